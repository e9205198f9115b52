/// The settings of configuration.toml that name a choice: each is an enum whose raw values are
/// what the file spells.

/// Chooses KVM or TCG. `auto` uses KVM only after a boot probe showed that a Linux guest really runs
/// under it: on some hosts /dev/kvm opens and KVM_CREATE_VM works, yet the guest hangs (nested KVM).
/// The probe's result is cached per host boot and guest kernel, so only the first pod pays for it.
public enum AcceleratorSetting: String, Sendable, CaseIterable {
    case auto, kvm, tcg
}

/// The guest's view of the pod directory.
public enum SharedFilesystemSetting: String, Sendable, CaseIterable {
    case virtioFS = "virtio-fs"
    case ninep = "9p"
}

/// How the shim reaches the agent: vsock where the host can give VMs a vsock device, otherwise a
/// virtio-serial port bound to a unix socket. Configurable: `auto`, `vsock` or `virtio-serial`.
public enum AgentTransportSetting: String, Sendable, CaseIterable {
    case auto
    case vsock
    case virtioSerial = "virtio-serial"
}

/// How libvirt reads back the started guest's CPU (it does so at every start on x86).
public enum CPUReadbackSetting: String, Sendable, Equatable, CaseIterable {
    /// The CPUID words in two monitor calls. libvirt gets there by dropping the
    /// `cpu-unavailable-features` capability for this domain, and logs it as tainted
    /// (`custom-hypervisor-feature`).
    case cpuidWords = "cpuid-words"
    /// libvirt's own way with current QEMU: one monitor call per CPU property, about 400, which
    /// costs about 200 ms per start under TCG.
    case perFeature = "per-feature"
}
