import Hypervisor
import SwiftKataOS

/// CPU, KVM, QEMU and vsock: what decides the accelerator and the agent transport.
extension HostChecks {
    func cpuVirtualization() -> CheckResult {
        guard let cpu = host.readText("/proc/cpuinfo", limit: 8 << 20).map(CPUInfo.init(parsing:)) else {
            return .warn("cpu-virtualization", "cannot read /proc/cpuinfo", fix: "mount procfs: mount -t proc proc /proc")
        }
        if cpu.flags.contains("vmx") { return .pass("cpu-virtualization", "vmx (Intel VT-x)") }
        if cpu.flags.contains("svm") { return .pass("cpu-virtualization", "svm (AMD-V)") }
        return .warn(
            "cpu-virtualization", "no vmx/svm flag in /proc/cpuinfo: no hardware virtualization for pods (TCG still works)",
            fix: "enable VT-x/AMD-V in the firmware, or nested virtualization in the parent hypervisor")
    }

    func kvmDevice() -> CheckResult {
        if host.canAccess("/dev/kvm", []), host.qemuUserCanOpen("/dev/kvm") == false {
            // libvirt checks this as the QEMU user: when it fails, its cached QEMU capabilities count as
            // stale and it re-probes QEMU at every domain start, whatever the accelerator.
            return .warn(
                "kvm-device",
                "libvirt's QEMU user (\(QEMUUser.name)) cannot open /dev/kvm: every pod start costs libvirt a QEMU re-probe (about 10 s under TCG)",
                fix: "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm, and a udev rule to keep it (make install does both: packaging/kvm-device.sh)")
        }
        if host.canAccess("/dev/kvm", [.read, .write]) { return .pass("kvm-device", "/dev/kvm is readable and writable") }
        if host.canAccess("/dev/kvm", []) {
            return .warn(
                "kvm-device", "/dev/kvm is not read/write for this user: pods use TCG (slow)",
                fix: "run the runtime as root, or add its user to group kvm: usermod -aG kvm USER")
        }
        return .warn("kvm-device", "no /dev/kvm: pods use TCG (slow)", fix: kvmModuleFix)
    }

    /// libvirt keeps its cached QEMU capabilities: otherwise every domain start re-probes QEMU (about
    /// 0.5 s, 10 s under TCG with KVM present), as on a fresh host whose /dev/kvm libvirt's QEMU user
    /// could not open when libvirtd started.
    func libvirtCapabilities() -> CheckResult {
        let hypervisor = configuration.hypervisor
        guard hypervisor.libvirtURI == "qemu:///system" else {
            return .pass("libvirt-capabilities", "not checked for \(hypervisor.libvirtURI) (its cache is the session user's)")
        }
        switch host.libvirtCapabilitiesStable(hypervisor.libvirtURI, hypervisor.emulator) {
        case .success(true):
            return .pass("libvirt-capabilities", "libvirt keeps its cached capabilities of \(hypervisor.emulator)")
        case .success(false):
            return .fail(
                "libvirt-capabilities",
                "libvirt re-probes \(hypervisor.emulator) at every lookup: each pod start waits for it (seconds)",
                fix: "let libvirt's QEMU user open /dev/kvm (packaging/kvm-device.sh), then restart libvirtd")
        case .failure(let error):
            return .warn("libvirt-capabilities", "not checked: \(error.message)", fix: "start libvirtd, then run swiftkata-check again")
        }
    }

    /// `modprobe` for this CPU's KVM module.
    var kvmModuleFix: String {
        let vendor = host.readText("/proc/cpuinfo", limit: 8 << 20).map(CPUInfo.init(parsing:))?.vendor
        switch vendor {
        case "GenuineIntel": return "modprobe kvm_intel"
        case "AuthenticAMD": return "modprobe kvm_amd"
        default: return "modprobe kvm_intel (Intel) or modprobe kvm_amd (AMD)"
        }
    }

    /// Boots the configured kernel and image under KVM (cached per boot and kernel, like the shim) and
    /// decides the accelerator pods will get.
    func kvmBoot() async -> (CheckResult, VMDescription.Accelerator) {
        let hypervisor = configuration.hypervisor
        guard host.canAccess(hypervisor.kernel, .read), host.canAccess(hypervisor.image, .read) else {
            return (
                .warn(
                    "kvm-boot", "not probed: the guest kernel or image is missing (see guest-kernel, guest-image)",
                    fix: "make install, then run swiftkata-check again"),
                hypervisor.accelerator == .kvm ? .kvm : .tcg
            )
        }
        let probe = await host.probeKVM(hypervisor.kernel, hypervisor.image, options.freshKVMProbe)
        let kvmFix =
            host.canAccess("/dev/kvm", [.read, .write])
            ? "for KVM, enable nested virtualization in the parent hypervisor (kvm_intel/kvm_amd nested=1) or use bare metal, then swiftkata-check --reprobe"
            : kvmModuleFix
        switch (hypervisor.accelerator, probe.usable) {
        case (.auto, true), (.kvm, true):
            return (.pass("kvm-boot", probe.reason), .kvm)
        case (.auto, false):
            return (.warn("kvm-boot", probe.reason, fix: kvmFix), .tcg)
        case (.kvm, false):
            return (
                .fail(
                    "kvm-boot", "accelerator = \"kvm\" is configured, but \(probe.reason)",
                    fix: "\(setting("accelerator = \"auto\"", in: "hypervisor")) (falls back to TCG), or \(kvmFix)"), .kvm
            )
        case (.tcg, true):
            return (
                .warn(
                    "kvm-boot", "KVM boots guests, but accelerator = \"tcg\" is configured: pods run slowly",
                    fix: setting("accelerator = \"auto\"", in: "hypervisor")), .tcg
            )
        case (.tcg, false):
            return (.pass("kvm-boot", "accelerator = \"tcg\" configured (\(probe.reason))"), .tcg)
        }
    }

    /// How libvirt will run QEMU (qemu.conf): not as root, and inside its seccomp sandbox.
    func qemuConfinement() -> CheckResult {
        let path = "/etc/libvirt/qemu.conf"
        let (runsAsRoot, sandbox) = QEMUConfinement.predicted(qemuConf: host.readText(path))
        var gaps: [String] = []
        if runsAsRoot { gaps.append("runs QEMU as root (user)") }
        if !sandbox { gaps.append("turns QEMU's seccomp sandbox off (seccomp_sandbox)") }
        guard !gaps.isEmpty else { return .pass("qemu-confinement", "QEMU runs unprivileged, in its seccomp sandbox (\(path))") }
        let fix = "set user = \"libvirt-qemu\" and seccomp_sandbox = 1 in \(path), then restart libvirtd"
        if configuration.hypervisor.allowUnconfinedQEMU {
            return .warn(
                "qemu-confinement", "\(path) \(gaps.joined(separator: " and ")): a QEMU escape is host root (allowed by hypervisor.allow_unconfined_qemu)",
                fix: fix)
        }
        return .fail(
            "qemu-confinement", "\(path) \(gaps.joined(separator: " and ")): pods are refused, since a QEMU escape would be host root",
            fix: "\(fix) (or accept it: \(setting("allow_unconfined_qemu = true", in: "hypervisor")))")
    }

    func qemuBinary() -> CheckResult {
        let emulator = configuration.hypervisor.emulator
        guard host.canAccess(emulator, .execute) else {
            if host.canAccess(emulator, []) { return .fail("qemu", "\(emulator) is not executable", fix: "chmod 755 \(emulator)") }
            return .fail(
                "qemu", "\(emulator) not found",
                fix: "apt-get install qemu-system-x86, or \(setting("emulator = \"/path/to/qemu-system-x86_64\"", in: "hypervisor"))")
        }
        let version = host.run(emulator, ["--version"])?.output.split(separator: "\n").first.map { ": \($0)" } ?? ""
        return .pass("qemu", "\(emulator)\(version)")
    }

    func tcg() -> CheckResult {
        let emulator = configuration.hypervisor.emulator
        guard let help = host.run(emulator, ["-accel", "help"]), help.status == 0 else {
            return .fail("tcg", "\(emulator) -accel help did not run", fix: "apt-get install qemu-system-x86")
        }
        let accelerators = help.output.split(separator: "\n").map { $0.trimmingWhitespace() }
        guard accelerators.contains("tcg") else {
            return .fail(
                "tcg", "\(emulator) was built without TCG (-accel help: \(accelerators.dropFirst().joined(separator: ", ")))",
                fix: "apt-get install qemu-system-x86 (Debian's QEMU has TCG)")
        }
        return .pass("tcg", "\(emulator) offers tcg")
    }

    /// The agent transport, as `AgentTransportSetting.resolve()` picks it on the real host.
    func vhostVsock() -> (CheckResult, ResolvedAgentTransport) {
        let device = "/dev/vhost-vsock"
        let usable = host.canAccess(device, [.read, .write])
        let missing = host.canAccess(device, []) ? "\(device) is not read/write for this user" : "no \(device)"
        switch configuration.agent.transport {
        case .auto where usable, .vsock where usable:
            return (.pass("vhost-vsock", "vsock (\(device) usable)"), .vsock)
        case .auto:
            return (.warn("vhost-vsock", "\(missing): agent uses virtio-serial", fix: "modprobe vhost_vsock"), .virtioSerial)
        case .vsock:
            return (
                .fail(
                    "vhost-vsock", "transport = \"vsock\" is configured, but \(missing)",
                    fix: "modprobe vhost_vsock, or \(setting("transport = \"auto\"", in: "agent"))"), .vsock
            )
        case .virtioSerial:
            return (.pass("vhost-vsock", "virtio-serial (configured)"), .virtioSerial)
        }
    }
}

/// The parts of /proc/cpuinfo that matter here (first CPU).
struct CPUInfo {
    var vendor: String?
    var flags: Set<String> = []

    init(parsing text: String) {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            switch parts[0].trimmingWhitespace() {
            case "vendor_id" where vendor == nil: vendor = parts[1].trimmingWhitespace()
            case "flags" where flags.isEmpty: flags = Set(parts[1].split(separator: " ").map(String.init))
            default: break
            }
            if vendor != nil && !flags.isEmpty { break }
        }
    }
}
