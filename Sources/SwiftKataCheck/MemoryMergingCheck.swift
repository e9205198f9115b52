import SwiftKataConfig
import SwiftKataOS

extension HostChecks {
    /// Kernel same-page merging (KSM): whether it runs, what it saves, and whether pod VMs of this
    /// configuration can take part. Information, never a failure: KSM costs ksmd's CPU, and with
    /// virtio-fs (the default) the guest's RAM is memory QEMU shares with virtiofsd, which KSM never
    /// merges; only pods on 9p have private guest RAM that it can.
    func memoryMerging() -> CheckResult {
        let directory = "/sys/kernel/mm/ksm"
        let usable =
            configuration.hypervisor.sharedFilesystem == .virtioFS
            ? "pods of this configuration cannot use it: with virtio-fs the guest's RAM is shared with virtiofsd, and KSM merges private memory only"
            : "pods of this configuration (9p) can: identical guest pages (the kernel, the agent) are merged across pods"
        guard let run = host.readText("\(directory)/run")?.trimmingWhitespace() else {
            return .pass("ksm", "not in this kernel (CONFIG_KSM); \(usable)")
        }
        guard run == "1" else {
            let enable =
                configuration.hypervisor.sharedFilesystem == .virtioFS ? "" : " (echo 1 > \(directory)/run turns it on, for ksmd's CPU)"
            return .pass("ksm", "off\(enable); \(usable)")
        }
        let sharing = host.readText("\(directory)/pages_sharing")?.trimmingWhitespace() ?? "?"
        let saved = Int(sharing).map { " (\($0 * 4 / 1024) MiB saved)" } ?? ""
        return .pass("ksm", "on: \(sharing) pages shared\(saved); \(usable)")
    }
}
