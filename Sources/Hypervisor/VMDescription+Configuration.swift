import SwiftKataConfig

extension VMDescription {
    /// A VM as `hypervisor` (configuration.toml's section) describes it: machine, size, emulator,
    /// kernel command line and the TCG and balloon settings. Pod VMs, warm-pool VMs and the KVM probe
    /// all start from here, so they boot the same machine.
    public init(
        configuration hypervisor: Configuration.HypervisorSection, owner: Owner, accelerator: Accelerator, kernel: String,
        image: GuestImage, agentChannel: AgentChannel, consoleLog: String
    ) {
        self.init(
            owner: owner, accelerator: accelerator, kernel: kernel, image: image, kernelCommandLine: hypervisor.kernelCommandLine,
            agentChannel: agentChannel, consoleLog: consoleLog)
        machine = hypervisor.machine
        vcpus = hypervisor.vcpus
        memoryMiB = hypervisor.memoryMiB
        emulator = hypervisor.emulator
        freePageReporting = hypervisor.freePageReporting
        translationCacheMiB = hypervisor.tcgTranslationCacheMiB > 0 ? hypervisor.tcgTranslationCacheMiB : nil
        cpuReadback = hypervisor.libvirtCPUReadback
    }
}
