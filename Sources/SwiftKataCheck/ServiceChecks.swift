import Hypervisor
import SwiftKataOS

/// The services around the runtime: libvirt, containerd and its registration of swiftkata, cgroups.
extension HostChecks {
    func libvirt() -> CheckResult {
        let uri = configuration.hypervisor.libvirtURI
        switch host.libvirt(uri) {
        case .failure(let error):
            return .fail("libvirt", error.message, fix: "start libvirtd: `libvirtd -d` or `systemctl start libvirtd`")
        case .success(let facts) where facts.driver != "QEMU":
            return .fail(
                "libvirt", "\(uri) uses the \(facts.driver) driver, not QEMU",
                fix: setting("libvirt_uri = \"qemu:///system\"", in: "hypervisor"))
        case .success(let facts):
            return .pass("libvirt", "\(uri): QEMU driver, libvirt \(facts.libvirt), QEMU \(facts.hypervisor ?? "version unknown")")
        }
    }

    func virtlogd() -> CheckResult {
        if host.processNames().contains("virtlogd") { return .pass("virtlogd", "running") }
        let socket = "/run/libvirt/virtlogd-sock"
        if host.acceptsConnections(socket) { return .pass("virtlogd", "socket-activated (\(socket))") }
        return .fail(
            "virtlogd", "not running: libvirt cannot start QEMU domains without it",
            fix: "start it: `virtlogd -d` or `systemctl start virtlogd`")
    }

    func containerdBinary() -> CheckResult {
        let path = host.canAccess("/usr/bin/containerd", .execute) ? "/usr/bin/containerd" : host.findExecutable("containerd")
        guard let path else {
            return .fail("containerd", "containerd not found in /usr/bin or PATH", fix: "apt-get install containerd")
        }
        // "containerd github.com/containerd/containerd 1.6.20~ds1 …"
        let version = host.run(path, ["--version"])?.output.split(separator: " ").dropFirst(2).first.map { " \($0)" } ?? ""
        return .pass("containerd", "\(path)\(version)")
    }

    func containerdRunning() -> CheckResult {
        let socket = options.containerdSocketPath
        if host.acceptsConnections(socket) { return .pass("containerd-running", "\(socket) accepts connections") }
        let found = host.canAccess(socket, []) ? "\(socket) refuses connections" : "no \(socket)"
        return .fail(
            "containerd-running", "\(found): containerd is not running",
            fix: "start containerd: `systemctl start containerd` (or `nohup containerd >/var/log/containerd.log 2>&1 &`)")
    }

    /// The CRI plugin as the running containerd reports it (`ctr plugins ls`), not as a file says:
    /// a config whose runtimes table lacks runc makes it fail to load, and with it every CRI pod.
    func containerdCRIPlugin() -> CheckResult {
        let socket = options.containerdSocketPath
        guard host.acceptsConnections(socket) else {
            return .warn(
                "containerd-cri", "not asked: containerd is not running (see containerd-running)", fix: "start containerd, then run swiftkata-check again")
        }
        guard let ctr = host.findExecutable("ctr", extraDirectories: ["/usr/bin"]),
            let listing = host.run(ctr, ["--address", socket, "plugins", "ls"]), listing.status == 0
        else {
            return .warn(
                "containerd-cri", "`ctr plugins ls` did not answer: the CRI plugin's state is unknown", fix: "apt-get install containerd (ctr comes with it)")
        }
        var status: String?
        for line in listing.output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 4 && fields[0] == "io.containerd.grpc.v1" && fields[1] == "cri" { status = String(fields[3]) }
        }
        switch status {
        case "ok":
            return .pass("containerd-cri", "containerd's CRI plugin is loaded")
        case nil:
            return .fail(
                "containerd-cri", "containerd lists no CRI plugin: Kubernetes cannot use this node",
                fix: "check disabled_plugins in \(options.containerdConfigurationPath)")
        case let other?:
            return .fail(
                "containerd-cri", "containerd's CRI plugin is \(other): no CRI pod (runc's either) can start; containerd's log says why",
                fix:
                    "a runtimes table without runc is the usual cause: `make install` merges the handler with runc named; or restore \(options.containerdConfigurationPath) and restart containerd"
            )
        }
    }

    /// The CRI handler as the running containerd reports it (its CRI status, as `crictl info` asks);
    /// the configuration file only when containerd cannot be asked.
    func containerdRuntime() -> CheckResult {
        let path = options.containerdConfigurationPath
        let table = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.\(SwiftKataNames.criHandler)]"
        let register = "make install (registers it), or add \(table) with runtime_type = \"\(SwiftKataNames.runtimeType)\" to \(path) and restart containerd"
        var unasked = "containerd is not running"
        if host.acceptsConnections(options.containerdSocketPath) {
            switch host.criStatus(options.containerdSocketPath) {
            case .success(let status):
                return runtimeAsReported(status, configurationPath: path, fix: register, table: table)
            case .failure(let error):
                unasked = "containerd's CRI status did not answer: \(error)"
            }
        }
        return runtimeFromFile(path: path, table: table, register: register, note: " (read from the file: \(unasked))")
    }

    private func runtimeAsReported(_ status: CRIRuntimeStatus, configurationPath path: String, fix register: String, table: String) -> CheckResult {
        let handler = SwiftKataNames.criHandler
        switch status.runtimeTypes[handler] {
        case SwiftKataNames.runtimeType:
            return .pass("containerd-runtime", "the running containerd's CRI plugin has handler \(handler) running \(SwiftKataNames.runtimeType)")
        case nil:
            let inFile = host.readText(path).map { ContainerdRuntimeRegistration(scanning: $0).handler } ?? .missing
            if case .present = inFile {
                return .warn(
                    "containerd-runtime", "\(path) names CRI handler \(handler), but the running containerd has not loaded it",
                    fix: "restart containerd (`systemctl restart containerd`)")
            }
            return .warn(
                "containerd-runtime",
                "the running containerd has no CRI handler \(handler) (handlers: \(status.runtimeTypes.keys.sorted().joined(separator: ", "))): Kubernetes cannot select swiftkata",
                fix: register)
        case let other?:
            return .fail(
                "containerd-runtime", "the running containerd's CRI handler \(handler) runs \"\(other)\", not \"\(SwiftKataNames.runtimeType)\"",
                fix: "set runtime_type = \"\(SwiftKataNames.runtimeType)\" under \(table) in \(path) and restart containerd")
        }
    }

    private func runtimeFromFile(path: String, table: String, register: String, note: String) -> CheckResult {
        guard let text = host.readText(path) else {
            let found = host.canAccess(path, []) ? "\(path) is not readable" : "no \(path)"
            return .warn(
                "containerd-runtime", "\(found): no CRI runtime handler \(SwiftKataNames.criHandler) (ctr --runtime \(SwiftKataNames.runtimeType) still works)",
                fix: register)
        }
        let registration = ContainerdRuntimeRegistration(scanning: text)
        if registration.criDisabled {
            return .warn(
                "containerd-runtime", "\(path) disables the CRI plugin: Kubernetes cannot use containerd",
                fix: "remove \"cri\" from disabled_plugins in \(path) and restart containerd")
        }
        switch registration.handler {
        case .missing:
            return .warn(
                "containerd-runtime",
                "\(path) has no CRI runtime handler \(SwiftKataNames.criHandler): Kubernetes cannot select swiftkata (ctr --runtime \(SwiftKataNames.runtimeType) still works)",
                fix: register)
        case .present(let type) where type == SwiftKataNames.runtimeType:
            return .pass("containerd-runtime", "\(path): CRI handler \(SwiftKataNames.criHandler) runs \(SwiftKataNames.runtimeType)\(note)")
        case .present(let type):
            return .fail(
                "containerd-runtime",
                "\(path): CRI handler \(SwiftKataNames.criHandler) has runtime_type \(type.map { "\"\($0)\"" } ?? "unset"), not \"\(SwiftKataNames.runtimeType)\"",
                fix: "set runtime_type = \"\(SwiftKataNames.runtimeType)\" under \(table) in \(path) and restart containerd")
        }
    }

    func shim() -> CheckResult {
        // containerd looks in its own PATH and next to its binary; under systemd that includes these.
        if let path = host.findExecutable(SwiftKataNames.shimBinary, extraDirectories: ["/usr/local/bin", "/usr/bin"]) {
            // The shim creates and destroys pod VMs through its helper, found next to it.
            let helper = "\(path.prefix(upTo: path.lastIndex(of: "/") ?? path.startIndex))/\(VMControl.helperName)"
            guard host.canAccess(helper, .execute) else {
                return .fail(
                    "shim", "\(path) is there but its helper \(helper) is not: pods cannot start", fix: "make install (installs both to /usr/local/bin)")
            }
            return .pass("shim", "\(path) (+ \(VMControl.helperName))")
        }
        return .fail(
            "shim", "\(SwiftKataNames.shimBinary) not found in PATH: containerd cannot start swiftkata pods",
            fix: "make install (installs it to /usr/local/bin)")
    }

    /// Kubernetes pods get their CNI network through `ip`, `tc` and `nsenter`; plain `ctr run`
    /// containers do not need them, so a missing tool is a warning.
    func podNetworkTools() -> CheckResult {
        let missing = PodNetworkTools.all.filter { !host.canAccess($0, .execute) }
        guard missing.isEmpty else {
            let consequence =
                missing == [PodNetworkTools.iptables]
                ? "kubectl port-forward cannot reach pods (they still run)" : "pods with a CNI network namespace cannot start"
            return .warn(
                "pod-network", "\(missing.joined(separator: ", ")) missing: \(consequence)",
                fix: "apt-get install iproute2 util-linux iptables")
        }
        return .pass("pod-network", "tc mirroring into the VM (\(PodNetworkTools.all.joined(separator: ", ")))")
    }

    func cgroups() -> CheckResult {
        if host.canAccess("/sys/fs/cgroup/cgroup.controllers", []) { return .pass("cgroups", "cgroup v2 (unified) at /sys/fs/cgroup") }
        let layout = host.canAccess("/sys/fs/cgroup/unified/cgroup.controllers", []) ? "hybrid cgroup v1/v2 layout" : "cgroup v1 layout"
        return .warn(
            "cgroups", "\(layout): cgroup v2 (unified) is recommended for pod resource accounting",
            fix: "boot the host with systemd.unified_cgroup_hierarchy=1 (cgroup v2 unified)")
    }
}
