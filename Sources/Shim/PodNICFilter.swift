/// What the guest may send onto the pod's network: the tap's ingress (frames from the VM) is
/// redirected to eth0 only for frames from the pod's own MAC and addresses, plus the ARP and IPv6
/// neighbour discovery that go with them. Everything else is reflected back into the tap, so it
/// never reaches the node's CNI bridge: guest root (who has NET_RAW whatever the pod spec says)
/// cannot spoof ARP, IPs or router advertisements for other pods or the node.
///
/// Built with u32 matches and the mirred action only: the hosts here lack the flower classifier
/// and the gact (drop) action, and u32 + mirred are what tc mirroring needs anyway.
enum PodNICFilter {
    /// The `tc filter add` arguments for the tap's ingress qdisc, in priority order.
    static func filters(tap: String, device: String, mac: String, addresses: [NetworkNamespaceScan.Address]) -> [[String]] {
        let toDevice = ["action", "mirred", "egress", "redirect", "dev", device]
        let fromPod = ["match", "ether", "src", mac]
        var filters: [[String]] = []
        func add(_ priority: Int, _ proto: String, _ matches: [String], _ action: [String]) {
            filters.append(["filter", "add", "dev", tap, "parent", "ffff:", "protocol", proto, "prio", "\(priority)", "u32"] + matches + action)
        }
        var priority = 10
        for address in addresses where !address.ip.contains(":") {
            guard let words = ipv4Words(address.ip) else { continue }
            add(priority, "ip", ["match", "ip", "src", "\(address.ip)/32"] + fromPod, toDevice)
            // ARP from the pod's MAC for the pod's IPv4 address (sender hardware and protocol address).
            add(
                priority + 1, "arp",
                ["match", "u16", words.high, "0xffff", "at", "14", "match", "u16", words.low, "0xffff", "at", "16"]
                    + macMatch(mac, at: 8) + fromPod, toDevice)
            priority += 2
        }
        for address in addresses where address.ip.contains(":") && !address.ip.lowercased().hasPrefix("fe80") {
            add(priority, "ipv6", ["match", "ip6", "src", "\(address.ip)/128"] + fromPod, toDevice)
            priority += 1
        }
        // Neighbour discovery from the link-local address (router solicitation 133, neighbour
        // solicitation 135, advertisement 136) and duplicate address detection from ::. Not 134: the
        // guest is no router. ICMPv6 right after the fixed header (next header 58), so that no
        // extension header hides the type.
        for type in [133, 135, 136] {
            add(
                priority, "ipv6",
                ["match", "ip6", "src", "fe80::/10", "match", "ip6", "protocol", "58", "0xff", "match", "u8", "\(type)", "0xff", "at", "40"] + fromPod, toDevice
            )
            priority += 1
        }
        add(
            priority, "ipv6", ["match", "ip6", "src", "::/128", "match", "ip6", "protocol", "58", "0xff", "match", "u8", "135", "0xff", "at", "40"] + fromPod,
            toDevice)
        // Anything else goes back where it came from: without a drop action, the reflection is the
        // drop (the guest sees its own frame again; nothing reaches eth0).
        add(99, "all", ["match", "u32", "0", "0"], ["action", "mirred", "egress", "redirect", "dev", tap])
        return filters
    }

    /// The two 16-bit halves of an IPv4 address, as u32 selectors take them ("0x0a63", "0x0005").
    static func ipv4Words(_ text: String) -> (high: String, low: String)? {
        let octets = text.split(separator: ".").compactMap { UInt16($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 <= 255 }) else { return nil }
        return (hex16(octets[0] << 8 | octets[1]), hex16(octets[2] << 8 | octets[3]))
    }

    /// u16 matches for a MAC address at `offset` (6 bytes: three aligned halves).
    static func macMatch(_ mac: String, at offset: Int) -> [String] {
        let bytes = mac.split(separator: ":").compactMap { UInt16($0, radix: 16) }
        guard bytes.count == 6 else { return [] }
        return (0..<3).flatMap { index in
            ["match", "u16", hex16(bytes[2 * index] << 8 | bytes[2 * index + 1]), "0xffff", "at", "\(offset + 2 * index)"]
        }
    }

    private static func hex16(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 4 - digits.count) + digits
    }
}
