import CLinuxSys
import Glibc
import SwiftKataOS

/// The host's TSC rate. Under TCG the guest's `rdtsc` reads the host's TSC (QEMU's TCG timer), so
/// the guest's TSC ticks at this rate.
///
/// The guest is told the rate (`tsc_early_khz=`) instead of calibrating it at boot. Calibration
/// against the emulated PIT fails when the host is busy (the vCPU is preempted in the middle), and
/// with `tsc=reliable` nothing corrects it later. Measured here: of 14 pods started at once, 3 had
/// guest clocks running 5.5 to 8.7 times too fast, so their agent's deadlines fired early and their
/// containers' timers were wrong.
public enum HostTSC {
    /// The rate, measured once per host boot and kept in `cacheDirectory` (a tmpfs state directory,
    /// emptied by a reboot), so that every VM gets the same value: it is in the domain XML and so
    /// in the warm pool's key. nil when the host has no usable TSC or was too busy to measure it.
    public static func kilohertz(cacheDirectory: String) -> UInt64? {
        let path = "\(cacheDirectory)/host-tsc-khz"
        if let text = readText(path, limit: 64)?.trimmingWhitespace(), let cached = UInt64(text), isPlausible(cached) {
            return cached
        }
        guard let measured = measure() else { return nil }
        try? writeFileAtomically(path, Array("\(measured)\n".utf8))
        return measured
    }

    /// Three 20 ms measurements against CLOCK_MONOTONIC_RAW; they must agree within 0.1 %.
    static func measure() -> UInt64? {
        let values = (0..<3).map { _ in UInt64(linux_measure_tsc_khz(20)) }.filter(isPlausible).sorted()
        guard values.count == 3, values[2] - values[0] <= values[1] / 1000 else { return nil }
        return values[1]
    }

    static func isPlausible(_ kilohertz: UInt64) -> Bool { (100_000...20_000_000).contains(kilohertz) }
}
