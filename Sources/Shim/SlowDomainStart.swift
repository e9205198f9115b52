import Glibc
import Hypervisor
import Logging
import SwiftKataOS

/// A domain start that took far longer than libvirt needs (about 0.2 s here) has a cause an operator
/// can fix; the commonest is named in the warning.
enum SlowDomainStart {
    /// Starts above this are reported.
    static let threshold: Duration = .seconds(3)

    /// Logs a warning when `elapsed` is over the threshold, naming the likely cause.
    static func report(_ elapsed: Duration, domain: String, logger: Logger) {
        guard elapsed > threshold else { return }
        logger.warning(
            "pod VM: the domain start was slow",
            metadata: [
                "domain": "\(domain)", "domain_create_ms": "\(elapsed.milliseconds)", "likely_cause": "\(likelyCause())",
            ])
    }

    /// What most likely made libvirt slow on this host.
    static func likelyCause(kvmDevice: String = "/dev/kvm") -> String {
        if userMayReadAndWrite(QEMUUser.name, kvmDevice) == false {
            return "libvirt's QEMU user (\(QEMUUser.name)) cannot open \(kvmDevice), so libvirt re-probes QEMU at every domain start: "
                + "chgrp kvm \(kvmDevice) && chmod 0660 \(kvmDevice) (make install does this; swiftkata-check names it)"
        }
        return "a loaded host, or libvirt re-probing QEMU after an upgrade (the next start shows which); swiftkata-check may tell more"
    }
}
