/// What CNI configured in a pod's network namespace, read from iproute2's JSON output
/// (`ip -j addr show`, `ip -j [-6] route show table main`): the interface the VM takes over and the
/// routes the guest must get. Pure parsing, so it is tested without a namespace.
struct NetworkNamespaceScan: Sendable, Equatable {
    struct Address: Sendable, Equatable {
        var ip: String
        var prefixLength: UInt32
    }

    struct Interface: Sendable, Equatable {
        var name: String
        var macAddress: String
        var mtu: UInt32
        var addresses: [Address]
    }

    struct Route: Sendable, Equatable {
        /// CIDR, or empty for the default route.
        var destination: String
        var gateway: String
        var device: String
        /// "link", "host" or empty (universe).
        var scope: String
    }

    /// The interface mirrored into the VM.
    var interface: Interface
    /// Routes through it that the kernel does not derive from its addresses.
    var routes: [Route]
    /// Other interfaces with addresses, which a VM with one NIC cannot carry (logged).
    var ignoredInterfaces: [String]

    /// Picks the interface: the one the default route leaves through, else the first Ethernet
    /// interface with an address; nil when the namespace has none (loopback only).
    static func parse(
        addresses addressJSON: [UInt8], routes routeJSON: [[UInt8]], excluding excluded: Set<String> = []
    ) throws(ShimError) -> NetworkNamespaceScan? {
        let links = try decodeArray(addressJSON, what: "ip -j addr show")
        var interfaces: [Interface] = []
        for link in links {
            guard let name = link["ifname"]?.stringValue, !excluded.contains(name),
                link["link_type"]?.stringValue == "ether",
                let mac = link["address"]?.stringValue, isMACAddress(mac)
            else { continue }
            var addresses: [Address] = []
            for info in link["addr_info"]?.arrayValue ?? [] {
                guard let ip = info["local"]?.stringValue, let prefix = info["prefixlen"]?.integerValue,
                    info["scope"]?.stringValue != "link"  // fe80::/64: the guest derives its own from the same MAC
                else { continue }
                addresses.append(Address(ip: ip, prefixLength: UInt32(clamping: prefix)))
            }
            let mtu = UInt32(clamping: link["mtu"]?.integerValue ?? 0)
            interfaces.append(Interface(name: name, macAddress: mac.lowercased(), mtu: mtu, addresses: addresses))
        }

        var routes: [Route] = []
        for table in routeJSON {
            for entry in try decodeArray(table, what: "ip -j route show") {
                guard let device = entry["dev"]?.stringValue, entry["protocol"]?.stringValue != "kernel",
                    entry["type"]?.stringValue.map({ $0 == "unicast" }) ?? true
                else { continue }
                let destination = entry["dst"]?.stringValue ?? "default"
                if destination.hasPrefix("fe80:") || destination.hasPrefix("ff00:") { continue }
                routes.append(
                    Route(
                        destination: destination == "default" ? "" : destination,
                        gateway: entry["gateway"]?.stringValue ?? "", device: device,
                        scope: entry["scope"]?.stringValue.flatMap { $0 == "global" || $0 == "universe" ? nil : $0 } ?? ""))
            }
        }

        let defaultDevice = routes.first(where: { $0.destination.isEmpty })?.device
        guard
            let chosen = interfaces.first(where: { $0.name == defaultDevice })
                ?? interfaces.first(where: { !$0.addresses.isEmpty })
        else { return nil }
        return NetworkNamespaceScan(
            interface: chosen,
            routes: routes.filter { $0.device == chosen.name },
            ignoredInterfaces: interfaces.filter { $0.name != chosen.name && !$0.addresses.isEmpty }.map(\.name))
    }

    private static func decodeArray(_ bytes: [UInt8], what: String) throws(ShimError) -> [JSONValue] {
        let trimmed = bytes.drop(while: { $0 == 0x20 || $0 == 0x0a })
        if trimmed.isEmpty { return [] }
        let value: JSONValue
        do { value = try JSONValue.decode(Array(trimmed)) } catch {
            throw .internalError("\(what) printed something that is not JSON: \(error)")
        }
        guard let array = value.arrayValue else { throw .internalError("\(what) printed JSON that is not an array") }
        return array
    }

    static func isMACAddress(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }
}
