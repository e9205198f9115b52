/// A VM description as QEMU's own command line, for boots without libvirt (the KVM probe). It
/// renders the same machine and devices as `DomainXML` does for libvirt, but the ones only libvirt
/// can set up: a virtio-fs share (libvirt starts virtiofsd) and a vsock device (libvirt picks its
/// context id).
public enum QEMUCommandLine {
    public static func arguments(for vm: VMDescription) throws(VMDescriptionError) -> [String] {
        try DomainXML.validate(vm)
        if vm.hotplug != nil {
            throw .invalid(field: "hotplug", reason: "a VM that grows needs libvirt (it resizes the running domain)")
        }
        var accel = vm.accelerator == .kvm ? "kvm" : "tcg"
        if vm.accelerator == .tcg, let cache = vm.translationCacheMiB { accel += ",tb-size=\(cache)" }
        var arguments = [
            vm.emulator, "-machine", vm.machine, "-accel", accel, "-cpu", vm.accelerator == .kvm ? "host" : "max",
            "-m", "\(vm.memoryMiB)", "-smp", "\(vm.vcpus)",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-kernel", vm.kernel,
        ]
        arguments += vm.image.qemuArguments
        arguments += ["-append", vm.image.kernelCommandLine(vm.kernelCommandLine)]
        arguments += ["-serial", "file:\(escape(vm.consoleLog))"]
        switch vm.sharedFilesystem {
        case .virtioFS:
            throw .invalid(field: "shared filesystem", reason: "virtio-fs needs libvirt (it starts virtiofsd)")
        case .ninep(let hostPath, let tag):
            arguments += [
                "-fsdev", "local,id=share0,path=\(escape(hostPath)),security_model=passthrough",
                "-device", "virtio-9p-pci,fsdev=share0,mount_tag=\(escape(tag))",
            ]
        case nil:
            break
        }
        switch vm.agentChannel {
        case .vsock:
            throw .invalid(field: "agent channel", reason: "vsock needs libvirt (it picks the context id)")
        case .virtioSerial(let socketPath, let name):
            arguments += [
                "-chardev", "socket,id=agent,path=\(escape(socketPath)),server=on,wait=off",
                "-device", "virtio-serial-pci,id=serial0",
                "-device", "virtserialport,bus=serial0.0,chardev=agent,name=\(escape(name))",
            ]
        }
        if let tap = vm.tap {
            arguments += [
                "-netdev", "tap,id=net0,ifname=\(tap.device),script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=net0,mac=\(tap.macAddress)",
            ]
        }
        arguments += ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0"]
        if vm.freePageReporting { arguments += ["-device", "virtio-balloon-pci,free-page-reporting=on"] }
        return arguments
    }

    /// Commas doubled, as QEMU's option syntax requires inside a value.
    static func escape(_ value: String) -> String {
        value.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
    }
}
