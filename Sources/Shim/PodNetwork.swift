import AgentAPI
import Glibc
import Hypervisor
import SwiftKataOS

/// A pod's network carried into its VM by "tc mirroring" (the Kata model). CNI configured an
/// interface (eth0) in the sandbox's network namespace. The shim creates a tap device, which the VM
/// gets as a virtio-net NIC with eth0's MAC address. Then it moves the tap into the pod's namespace
/// and redirects every frame between eth0 and the tap, both ways, with tc (ingress qdisc + mirred).
/// The guest gives its NIC eth0's addresses, routes and MTU, so the pod IP answers from inside the VM.
///
/// The tap is created in the host's namespace first because libvirt opens it there by name when the
/// domain starts; a tap keeps working for QEMU when it is moved afterwards.
struct PodNetwork: Sendable {
    let namespacePath: String
    let tapName: String
    let scan: NetworkNamespaceScan

    static let ip = PodNetworkTools.ip
    static let nsenter = PodNetworkTools.nsenter

    /// `sktap` + 10 hex digits of the pod's key: fits IFNAMSIZ, and `delete` finds it again.
    static func tapName(for layout: PodLayout) -> String {
        "sktap" + Digest.sha256Hex("\(layout.namespace)/\(layout.podID)").prefix(10)
    }

    /// Reads what CNI set up in the namespace; nil when there is nothing to carry (loopback only).
    static func inspect(namespacePath: String, tapName: String) throws(ShimError) -> PodNetwork? {
        guard namespacePath.hasPrefix("/"), access(namespacePath, R_OK) == 0 else {
            throw .invalidArgument(
                "network namespace \(namespacePath): \(namespacePath.hasPrefix("/") ? String(cString: strerror(errno)) : "not an absolute path")")
        }
        let addresses = try run(ip, ["-j", "addr", "show"], in: namespacePath, what: "listing the pod's interfaces")
        let routes4 = try run(ip, ["-j", "-4", "route", "show", "table", "main"], in: namespacePath, what: "listing the pod's IPv4 routes")
        let routes6 = try run(ip, ["-j", "-6", "route", "show", "table", "main"], in: namespacePath, what: "listing the pod's IPv6 routes")
        guard
            let scan = try NetworkNamespaceScan.parse(
                addresses: Array(addresses.utf8), routes: [Array(routes4.utf8), Array(routes6.utf8)], excluding: [tapName])
        else { return nil }
        return PodNetwork(namespacePath: namespacePath, tapName: tapName, scan: scan)
    }

    /// The guest's view: one NIC with eth0's MAC, name, MTU and addresses; its routes.
    var agentInterfaces: [Swiftkata_Agent_V1_NetworkInterface] {
        var nic = Swiftkata_Agent_V1_NetworkInterface()
        nic.macAddress = scan.interface.macAddress
        nic.name = scan.interface.name
        nic.mtu = scan.interface.mtu
        nic.addresses = scan.interface.addresses.map { address in
            var entry = Swiftkata_Agent_V1_IPAddress()
            entry.address = address.ip
            entry.prefixLength = address.prefixLength
            return entry
        }
        return [nic]
    }

    var agentRoutes: [Swiftkata_Agent_V1_Route] {
        scan.routes.map { route in
            var entry = Swiftkata_Agent_V1_Route()
            entry.destination = route.destination
            entry.gateway = route.gateway
            entry.device = route.device
            entry.scope = route.scope
            return entry
        }
    }

    /// Runs an iproute2 command, in the pod's namespace when `namespacePath` is set; its stdout, or
    /// an error quoting its stderr.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], in namespacePath: String?, what: String) throws(ShimError) -> String {
        let (executable, argv) = namespacePath.map { (nsenter, ["--net=\($0)", "--", tool] + arguments) } ?? (tool, arguments)
        let result: HostCommand
        do { result = try HostCommand.run(executable, argv, timeoutMilliseconds: 10_000) } catch {
            throw .internalError("\(what): \(error)")
        }
        guard result.status == 0 else {
            let reason = result.standardError.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw .internalError("\(what): \(([tool] + arguments).joined(separator: " ")): \(reason)")
        }
        return result.standardOutput
    }
}
