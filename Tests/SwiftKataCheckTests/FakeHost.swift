import SwiftKataCheck
import SwiftKataConfig
import SwiftKataOS
import Synchronization

/// A host made of dictionaries: by default a healthy one (every check passes, KVM and vsock).
struct FakeHost {
    static let configurationPath = "/etc/swiftkata/configuration.toml"
    static let bzImageHeader: [UInt8] = Array(repeating: 0, count: 0x202) + Array("HdrS".utf8) + [0, 0, 0, 0]

    var files: [String: [UInt8]] = [
        "/proc/cpuinfo": Array("vendor_id\t: GenuineIntel\nflags\t\t: fpu vme vmx sse2\n".utf8),
        "/usr/share/swiftkata/vmlinux": [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0],
        "/usr/share/swiftkata/swiftkata-rootfs.img": Array(repeating: 0, count: 1080) + [0x53, 0xEF],  // ext4 superblock magic
        "/sys/fs/cgroup/cgroup.controllers": Array("cpu memory pids\n".utf8),
        "/etc/containerd/config.toml": Array(
            """
            version = 2
            [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
              runtime_type = "io.containerd.swiftkata.v2"
            """.utf8),
    ]
    var readWrite: Set<String> = ["/dev/kvm", "/dev/vhost-vsock"]
    /// Files that exist but this user may not use.
    var inaccessible: Set<String> = []
    var executables: Set<String> = [
        "/usr/bin/qemu-system-x86_64", "/usr/lib/qemu/virtiofsd", "/usr/bin/containerd", "/usr/bin/ctr", "/usr/local/bin/containerd-shim-swiftkata-v2",
        "/usr/local/bin/swiftkata-vm", "/usr/sbin/ip", "/usr/sbin/tc", "/usr/bin/nsenter", "/usr/sbin/iptables",
    ]
    var processes: Set<String> = ["libvirtd", "virtlogd", "containerd"]
    var sockets: Set<String> = ["/run/containerd/containerd.sock"]
    /// Directory listings (the warm pool's).
    var directories: [String: [String]] = [:]
    var commands: [String: CommandOutput] = [
        "/usr/bin/qemu-system-x86_64 -accel help": CommandOutput(status: 0, output: "Accelerators supported in QEMU binary:\ntcg\nkvm\n"),
        "/usr/bin/qemu-system-x86_64 --version": CommandOutput(status: 0, output: "QEMU emulator version 7.2.0\n"),
        "/usr/bin/ctr --address /run/containerd/containerd.sock plugins ls": CommandOutput(status: 0, output: FakeHost.ctrPlugins(cri: "ok")),
    ]
    var libvirt: Result<LibvirtFacts, HostProbeError> = .success(LibvirtFacts(driver: "QEMU", libvirt: "9.0.0", hypervisor: "7.2.0"))
    var kvm = KVMProbeOutcome(usable: true, reason: "KVM boot probe passed (agent ready after 0.3 seconds)")
    var environment = ["PATH": "/usr/local/bin:/usr/bin"]
    /// Files libvirt's QEMU user may not open (a fresh host's root-only /dev/kvm).
    var closedToQEMU: Set<String> = []
    /// Whether libvirt keeps its cached QEMU capabilities.
    var capabilitiesStable: Result<Bool, HostProbeError> = .success(true)
    /// What the running containerd's CRI status says (default: it cannot be asked).
    var cri: Result<CRIRuntimeStatus, HostProbeError> = .failure(HostProbeError("unimplemented"))
    /// The `fresh` flag of every KVM probe.
    let probes = ProbeLog()

    mutating func setText(_ path: String, _ text: String) { files[path] = Array(text.utf8) }

    /// What `ctr plugins ls` prints, with the CRI plugin in `cri` state.
    static func ctrPlugins(cri: String) -> String {
        """
        TYPE                                  ID                       PLATFORMS      STATUS
        io.containerd.content.v1              content                  -              ok
        io.containerd.grpc.v1                 cri                      linux/amd64    \(cri)
        io.containerd.grpc.v1                 tasks                    -              ok

        """
    }

    var environmentValue: HostEnvironment {
        let (files, readWrite, inaccessible, executables) = (files, readWrite, inaccessible, executables)
        let (processes, sockets, commands, libvirt, kvm) = (processes, sockets, commands, libvirt, kvm)
        let probes = probes
        let directories = directories
        var host = HostEnvironment(
            readFile: { path, limit in files[path].map { Array($0.prefix(limit)) } },
            canAccess: { path, access in
                if inaccessible.contains(path) { return access.isEmpty }
                if access.contains(.execute) { return executables.contains(path) }
                if access.contains(.write) { return readWrite.contains(path) }
                return files[path] != nil || readWrite.contains(path) || executables.contains(path) || sockets.contains(path)
            },
            processNames: { processes },
            run: { executable, arguments in commands[([executable] + arguments).joined(separator: " ")] },
            acceptsConnections: { sockets.contains($0) },
            libvirt: { _ in libvirt },
            probeKVM: { _, _, fresh in
                probes.fresh.withLock { $0.append(fresh) }
                return kvm
            },
            loadConfiguration: { path, mayBeMissing throws(ConfigurationError) in
                if let text = files[path] { return try Configuration.parse(String(decoding: text, as: UTF8.self), path: path) }
                // Only the fake's files exist: never this machine's real /etc/swiftkata/configuration.toml.
                if mayBeMissing { return Configuration() }
                return try Configuration.load(path: path, mayBeMissing: false)
            },
            environment: environment)
        host.listDirectory = { directories[$0] }
        let closedToQEMU = closedToQEMU
        host.qemuUserCanOpen = { !closedToQEMU.contains($0) }
        let cri = cri
        host.criStatus = { _ in cri }
        let capabilitiesStable = capabilitiesStable
        host.libvirtCapabilitiesStable = { _, _ in capabilitiesStable }
        return host
    }

    func report(_ options: CheckOptions = CheckOptions()) async -> CheckReport {
        await HostCheck(host: environmentValue, options: options).run()
    }
}

/// Records the KVM probes a check ran.
final class ProbeLog: Sendable {
    let fresh = Mutex<[Bool]>([])
}
