import AgentRuntime
import CGuestSys
import Glibc
import GuestAgentCore
import SwiftKataOS
import TTRPC

/// Applies the pod's validated network to the guest through rtnetlink (guest_net.c): loopback up,
/// each NIC found by the MAC it has now, given the pod's MAC (a pre-booted VM's NIC), renamed, MTU,
/// addresses, up; then the routes (link routes first).
enum GuestNetwork {
    typealias NetworkError = AgentError

    static let sysClassNet = "/sys/class/net"

    /// Sets `lo` up (≈ 12 ms of kernel work under TCG: its addresses and routes); a no-op once up.
    static func setLoopbackUp() throws(NetworkError) {
        let loopback = try index(of: "lo")
        try netlink("loopback lo: setting it up") { guest_net_link_up(loopback, 1, $0, $1) }
    }

    static func apply(_ network: PodNetwork) throws(NetworkError) {
        try setLoopbackUp()
        // Every NIC is found before anything changes, so a missing one leaves the guest as it was.
        var found: [(PodNetwork.Interface, ifindex: Int32, current: String)] = []
        for interface in network.interfaces {
            guard let (name, ifindex) = nic(mac: interface.deviceMAC) else {
                throw NetworkError(code: .notFound, description: "\(describe(interface)): no guest network device has MAC address \(interface.deviceMAC)")
            }
            found.append((interface, ifindex, name))
        }
        for (interface, ifindex, current) in found {
            let what = describe(interface)
            let rename = current != interface.name
            if rename || interface.changesMAC {
                // Linux may refuse to rename a link that is up, and some drivers to change its MAC.
                let purpose = [rename ? "rename it" : nil, interface.changesMAC ? "change its MAC" : nil].compactMap { $0 }.joined(separator: " and ")
                try netlink("\(what): setting \(current) down to \(purpose)") { guest_net_link_up(ifindex, 0, $0, $1) }
            }
            if interface.changesMAC {
                let mac = interface.mac.bytes
                try netlink("\(what): setting MAC \(interface.mac)") { guest_net_link_set_address(ifindex, mac, mac.count, $0, $1) }
            }
            if rename || interface.mtu != 0 {
                let step = [rename ? "renaming \(current)" : nil, interface.mtu != 0 ? "setting MTU \(interface.mtu)" : nil]
                    .compactMap { $0 }.joined(separator: " and ")
                try netlink("\(what): \(step)") { guest_net_link_set(ifindex, rename ? interface.name : nil, interface.mtu, $0, $1) }
            }
            for address in interface.addresses {
                try netlink("\(what): adding \(address)") {
                    guest_net_addr_add(ifindex, address.address.family.addressFamily, address.address.bytes, UInt32(address.length), $0, $1)
                }
            }
            try netlink("\(what): setting it up") { guest_net_link_up(ifindex, 1, $0, $1) }
        }
        for route in network.routes {
            let what = "route \(route)"
            let device =
                try route.device.map { name throws(NetworkError) -> Int32 in
                    do { return try index(of: name) } catch {
                        throw NetworkError(code: .failedPrecondition, description: "\(what): no device \(name) in the guest")
                    }
                } ?? 0
            let family = route.destination.address.family.addressFamily
            let destination = route.destination.address.bytes
            let length = UInt32(route.destination.length)
            try netlink("\(what): adding") { detail, size in
                if let gateway = route.gateway {
                    return guest_net_route_add(family, destination, length, gateway.bytes, device, route.scope.rawValue, detail, size)
                }
                return guest_net_route_add(family, destination, length, nil, device, route.scope.rawValue, detail, size)
            }
        }
    }

    /// "interface eth0 (02:00:00:aa:bb:cc)", or with the device's MAC first when it changes:
    /// "interface eth0 (52:54:00:12:34:56, to become 02:00:00:aa:bb:cc)".
    private static func describe(_ interface: PodNetwork.Interface) -> String {
        interface.changesMAC
            ? "interface \(interface.name) (\(interface.deviceMAC), to become \(interface.mac))"
            : "interface \(interface.name) (\(interface.mac))"
    }

    /// The network device whose /sys/class/net/<name>/address is `mac`, with its ifindex.
    static func nic(mac: MACAddress) -> (name: String, ifindex: Int32)? {
        for name in directoryEntries(sysClassNet).sorted() {
            guard let address = readText("\(sysClassNet)/\(name)/address", limit: 64),
                address.trimmingTrailingNewlines.lowercased() == mac.text,
                let ifindex = try? index(of: name)
            else { continue }
            return (name, ifindex)
        }
        return nil
    }

    static func index(of name: String) throws(NetworkError) -> Int32 {
        let index = if_nametoindex(name)
        guard index > 0 else { throw NetworkError(code: .failedPrecondition, description: "no network device \(name) in the guest") }
        return Int32(index)
    }

    /// Runs one guest_net_* call (which returns 0 or an errno, with the kernel's detail in the buffer).
    private static func netlink(
        _ what: @autoclosure () -> String,
        _ call: (UnsafeMutablePointer<CChar>, Int) throws(NetworkError) -> Int32
    ) throws(NetworkError) {
        let size = 256
        let detail = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        detail.initialize(repeating: 0, count: size)
        defer { detail.deallocate() }
        let err = try call(detail, size)
        guard err != 0 else { return }
        let kernel = String(cString: detail)
        let code: NetworkError.Code =
            switch err {
            case EEXIST: .alreadyExists
            case EINVAL, ERANGE: .invalid
            case ENODEV, ENETUNREACH, EADDRNOTAVAIL, EBUSY, ESRCH: .failedPrecondition
            default: .internalError
            }
        throw NetworkError(code: code, description: "\(what()): \(String(cString: strerror(err)))\(kernel.isEmpty ? "" : " (\(kernel))")")
    }
}

private extension MACAddress {
    /// The six bytes of the (validated) text.
    var bytes: [UInt8] { text.split(separator: ":").compactMap { UInt8($0, radix: 16) } }
}
