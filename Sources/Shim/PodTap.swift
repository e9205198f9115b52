import Glibc
import Hypervisor
import SwiftKataOS

/// The pod's tap device, wherever it is: created in the host's namespace before the domain starts
/// (libvirt opens it there by name), moved into the pod's namespace and wired to the CNI interface
/// once QEMU holds it, and removed from either place. Every tap operation of the shim, at boot, on
/// a failed boot, at teardown and in `delete`, goes through this one type.
struct PodTap: Sendable {
    let name: String
    /// The pod's network namespace and CNI interface, once the tap is (or may be) connected there.
    var namespacePath: String?
    var interface: String?

    init(name: String, namespacePath: String? = nil, interface: String? = nil) {
        self.name = name
        self.namespacePath = namespacePath
        self.interface = interface
    }

    /// The tap of `network` (in the pod's namespace once connected).
    init(connectedTo network: PodNetwork) {
        self.init(name: network.tapName, namespacePath: network.namespacePath, interface: network.scan.interface.name)
    }

    private static let ip = PodNetworkTools.ip
    private static let tc = PodNetworkTools.tc

    /// Before the VM starts: a persistent tap in the host's namespace (a stale one of that name is replaced).
    func create() throws(ShimError) {
        _ = try? PodNetwork.run(Self.ip, ["link", "del", "dev", name], in: nil, what: "")
        _ = try PodNetwork.run(Self.ip, ["tuntap", "add", "dev", name, "mode", "tap"], in: nil, what: "creating tap device \(name)")
        // Nothing of the host's own stack may speak on it (IPv6 router solicitations, DAD).
        _ = try? PodNetwork.run("/usr/sbin/sysctl", ["-q", "-w", "net.ipv6.conf.\(name).disable_ipv6=1"], in: nil, what: "")
    }

    /// Once QEMU holds the tap: moves it into `network`'s namespace and redirects traffic both ways
    /// between it and the CNI interface. Returns the tap as it now is, for `remove`.
    func connect(to network: PodNetwork) throws(ShimError) -> PodTap {
        let device = network.scan.interface.name
        let namespacePath = network.namespacePath
        _ = try PodNetwork.run(
            Self.ip, ["link", "set", "dev", name, "netns", namespacePath], in: nil,
            what: "moving \(name) into the pod's network namespace")
        var link = ["link", "set", "dev", name]
        if network.scan.interface.mtu > 0 { link += ["mtu", "\(network.scan.interface.mtu)"] }
        _ = try PodNetwork.run(Self.ip, link + ["up"], in: namespacePath, what: "bringing \(name) up")
        for from in [device, name] {
            _ = try? PodNetwork.run(Self.tc, ["qdisc", "del", "dev", from, "ingress"], in: namespacePath, what: "")
            _ = try PodNetwork.run(Self.tc, ["qdisc", "add", "dev", from, "ingress"], in: namespacePath, what: "adding an ingress qdisc to \(from)")
        }
        // Into the VM: everything that reaches eth0.
        _ = try PodNetwork.run(
            Self.tc,
            [
                "filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
                "action", "mirred", "egress", "redirect", "dev", name,
            ],
            in: namespacePath, what: "redirecting \(device) to \(name)")
        // Out of the VM: only what the pod may send (PodNICFilter).
        for filter in PodNICFilter.filters(
            tap: name, device: device, mac: network.scan.interface.macAddress,
            addresses: network.scan.interface.addresses)
        {
            _ = try PodNetwork.run(Self.tc, filter, in: namespacePath, what: "filtering \(name) to \(device)")
        }
        return PodTap(connectedTo: network)
    }

    /// Removes the tap (in the pod's namespace or still in the host's) and the redirect on the CNI
    /// interface. Idempotent; returns what could not be undone.
    @discardableResult
    func remove() -> [String] {
        var failures: [String] = []
        if let namespacePath, access(namespacePath, F_OK) == 0 {
            if let interface {
                _ = try? PodNetwork.run(Self.tc, ["qdisc", "del", "dev", interface, "ingress"], in: namespacePath, what: "")
            }
            if Self.linkExists(name, in: namespacePath) {
                do { _ = try PodNetwork.run(Self.ip, ["link", "del", "dev", name], in: namespacePath, what: "deleting \(name)") } catch {
                    failures.append("\(error)")
                }
            }
        }
        if Self.linkExists(name, in: nil) {
            do { _ = try PodNetwork.run(Self.ip, ["link", "del", "dev", name], in: nil, what: "deleting \(name)") } catch {
                failures.append("\(error)")
            }
        }
        return failures
    }

    static func linkExists(_ name: String, in namespacePath: String?) -> Bool {
        (try? PodNetwork.run(ip, ["link", "show", "dev", name], in: namespacePath, what: "")) != nil
    }
}
