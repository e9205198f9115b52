import AgentRuntime
import Testing

@Suite("Pod network and sysctl validation")
struct PodNetworkTests {
    static func interface(
        mac: String = "52:54:00:12:34:56", device: String = "", name: String = "eth0", mtu: UInt32 = 1400,
        addresses: [(String, UInt32)] = [("10.88.0.5", 16), ("fd00::5", 64)]
    ) -> PodNetwork.InterfaceRequest {
        PodNetwork.InterfaceRequest(
            macAddress: mac, deviceMacAddress: device, name: name, mtu: mtu,
            addresses: addresses.map { (address: $0.0, prefixLength: $0.1) })
    }

    static func route(_ destination: String = "", via gateway: String = "", dev device: String = "", scope: String = "") -> PodNetwork.RouteRequest {
        PodNetwork.RouteRequest(destination: destination, gateway: gateway, device: device, scope: scope)
    }

    @Test func aCNIResultValidatesAndLinkRoutesComeFirst() throws {
        let network = try PodNetwork.validate(
            interfaces: [Self.interface(mac: "52:54:00:AB:cd:EF")],
            routes: [
                Self.route(via: "10.88.0.1"), Self.route("10.89.0.0/16", dev: "eth0"),
                Self.route("::/0", via: "fd00::1", dev: "eth0"), Self.route("10.90.0.0/24", dev: "eth0", scope: "host"),
            ])
        let eth0 = try #require(network.interfaces.first)
        #expect(eth0.mac.text == "52:54:00:ab:cd:ef")
        #expect(eth0.name == "eth0" && eth0.mtu == 1400)
        #expect(eth0.addresses.map(\.description) == ["10.88.0.5/16", "fd00::5/64"])
        #expect(eth0.addresses[0].address.bytes == [10, 88, 0, 5])
        #expect(
            network.routes.map(\.description) == [
                "10.89.0.0/16 dev eth0",
                "10.90.0.0/24 dev eth0 scope host",
                "default via 10.88.0.1",
                "default via fd00::1 dev eth0",
            ])
        #expect(network.routes.map(\.scope) == [.link, .host, .universe, .universe])
        #expect(network.routes[2].destination == IPPrefix(address: .any(.v4), length: 0))
        #expect(network.routes[3].destination.address.family == .v6)
    }

    @Test func aPreBootedNICIsFoundByItsDeviceMACAndGivenThePodsMAC() throws {
        let network = try PodNetwork.validate(
            interfaces: [
                Self.interface(mac: "02:00:00:AA:bb:cc", device: "52:54:00:12:34:56"),
                Self.interface(mac: "52:54:00:12:34:57", name: "eth1"),
                Self.interface(mac: "52:54:00:12:34:58", device: "52:54:00:12:34:58".uppercased(), name: "eth2"),
            ],
            routes: [])
        #expect(network.interfaces.map(\.mac.text) == ["02:00:00:aa:bb:cc", "52:54:00:12:34:57", "52:54:00:12:34:58"])
        #expect(network.interfaces.map(\.deviceMAC.text) == ["52:54:00:12:34:56", "52:54:00:12:34:57", "52:54:00:12:34:58"])
        #expect(network.interfaces.map(\.changesMAC) == [true, false, false])
        // A chain is fine (eth1 takes the MAC eth0 gives up): the devices differ, and so do the MACs they end with.
        let chain = try PodNetwork.validate(
            interfaces: [
                Self.interface(mac: "02:00:00:aa:bb:cc", device: "52:54:00:12:34:56"),
                Self.interface(mac: "02:00:00:aa:bb:dd", device: "02:00:00:aa:bb:cc", name: "eth1"),
            ],
            routes: [])
        #expect(chain.interfaces.map(\.changesMAC) == [true, true])
    }

    @Test func nothingIsValidToo() throws {
        let network = try PodNetwork.validate(interfaces: [], routes: [])
        #expect(network.interfaces.isEmpty && network.routes.isEmpty)
    }

    @Test(arguments: [
        (interface(mac: ""), "interfaces[0].mac_address: \"\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(mac: "52:54:00:12:34"), "interfaces[0].mac_address: \"52:54:00:12:34\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(mac: "52:54:00:12:34:5g"), "interfaces[0].mac_address: \"52:54:00:12:34:5g\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(mac: "52-54-00-12-34-56"), "interfaces[0].mac_address: \"52-54-00-12-34-56\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(device: "52:54:00:12:34"), "interfaces[0].device_mac_address: \"52:54:00:12:34\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(device: "52-54-00-12-34-56"), "interfaces[0].device_mac_address: \"52-54-00-12-34-56\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(mac: "", device: "52:54:00:12:34:56"), "interfaces[0].mac_address: \"\" is not xx:xx:xx:xx:xx:xx (hex)"),
        (interface(name: ""), "interfaces[0].name: \"\" is not 1 to 15 bytes of [A-Za-z0-9_.-]"),
        (interface(name: "averyveryverylong0"), "interfaces[0].name: \"averyveryverylong0\" is not 1 to 15 bytes of [A-Za-z0-9_.-]"),
        (interface(name: "eth/0"), "interfaces[0].name: \"eth/0\" is not 1 to 15 bytes of [A-Za-z0-9_.-]"),
        (interface(name: ".."), "interfaces[0].name: \"..\" is not 1 to 15 bytes of [A-Za-z0-9_.-]"),
        (interface(mtu: 67), "interfaces[0].mtu: 67 is outside 68...65535 (0 keeps the current MTU)"),
        (interface(mtu: 65536), "interfaces[0].mtu: 65536 is outside 68...65535 (0 keeps the current MTU)"),
        (interface(addresses: [("10.88.0.300", 16)]), "interfaces[0].addresses[0]: \"10.88.0.300\" is not an IPv4 or IPv6 address"),
        (interface(addresses: [("10.88.0.5/16", 16)]), "interfaces[0].addresses[0]: \"10.88.0.5/16\" is not an IPv4 or IPv6 address"),
        (interface(addresses: [("fe80::1%eth0", 64)]), "interfaces[0].addresses[0]: \"fe80::1%eth0\" is not an IPv4 or IPv6 address"),
        (interface(addresses: [("10.88.0.5", 33)]), "interfaces[0].addresses[0]: prefix length 33 of 10.88.0.5 exceeds 32"),
        (interface(addresses: [("fd00::5", 129)]), "interfaces[0].addresses[0]: prefix length 129 of fd00::5 exceeds 128"),
        (interface(addresses: Array(repeating: ("10.0.0.1", 8), count: 17)), "interfaces[0].addresses: 17 addresses, at most 16"),
    ])
    func badInterfacesAreRejectedNamingTheField(_ request: PodNetwork.InterfaceRequest, _ message: String) {
        let error = #expect(throws: PodConfigError.self) { try PodNetwork.validate(interfaces: [request], routes: []) }
        #expect(error?.description == message)
    }

    @Test func interfacesAreUniqueAndBounded() {
        let sameMAC = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(interfaces: [Self.interface(), Self.interface(mac: "52:54:00:12:34:56".uppercased(), name: "eth1")], routes: [])
        }
        #expect(sameMAC?.description == "interfaces[1].mac_address: 52:54:00:12:34:56 is listed twice")
        let sameName = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(interfaces: [Self.interface(), Self.interface(mac: "52:54:00:12:34:57")], routes: [])
        }
        #expect(sameName?.description == "interfaces[1].name: eth0 is listed twice")
        let sameDevice = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(
                interfaces: [Self.interface(), Self.interface(mac: "02:00:00:aa:bb:cc", device: "52:54:00:12:34:56", name: "eth1")], routes: [])
        }
        #expect(sameDevice?.description == "interfaces[1].device_mac_address: device 52:54:00:12:34:56 is taken by interfaces[0]")
        let samePlainDevice = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(
                interfaces: [Self.interface(mac: "02:00:00:aa:bb:cc", device: "52:54:00:12:34:56"), Self.interface(name: "eth1")], routes: [])
        }
        #expect(samePlainDevice?.description == "interfaces[1].mac_address: device 52:54:00:12:34:56 is taken by interfaces[0]")
        let sameTarget = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(
                interfaces: [
                    Self.interface(mac: "02:00:00:aa:bb:cc", device: "52:54:00:12:34:56"),
                    Self.interface(mac: "02:00:00:AA:BB:CC", device: "52:54:00:12:34:57", name: "eth1"),
                ],
                routes: [])
        }
        #expect(sameTarget?.description == "interfaces[1].mac_address: 02:00:00:aa:bb:cc is listed twice")
        let tooMany = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(interfaces: Array(repeating: Self.interface(), count: 17), routes: [])
        }
        #expect(tooMany?.description == "interfaces: 17 interfaces, at most 16")
        let routes = #expect(throws: PodConfigError.self) {
            try PodNetwork.validate(interfaces: [], routes: Array(repeating: Self.route(via: "10.0.0.1"), count: 129))
        }
        #expect(routes?.description == "routes: 129 routes, at most 128")
    }

    @Test(arguments: [
        (route("10.0.0.0", dev: "eth0"), "routes[0].destination: \"10.0.0.0\" is not a CIDR (address/prefix-length)"),
        (route("10.0.0.0/33", dev: "eth0"), "routes[0].destination: \"10.0.0.0/33\" is not a CIDR (address/prefix-length)"),
        (route("10.0.0.0/-1", dev: "eth0"), "routes[0].destination: \"10.0.0.0/-1\" is not a CIDR (address/prefix-length)"),
        (route("default", via: "10.0.0.1"), "routes[0].destination: \"default\" is not a CIDR (address/prefix-length)"),
        (route("10.0.0.5/24", dev: "eth0"), "routes[0].destination: 10.0.0.5/24 has host bits set (the network is 10.0.0.0/24)"),
        (route("fd00::1/64", dev: "eth0"), "routes[0].destination: fd00::1/64 has host bits set (the network is fd00::/64)"),
        (route(via: "10.0.0.256"), "routes[0].gateway: \"10.0.0.256\" is not an IPv4 or IPv6 address"),
        (route("10.1.0.0/16", via: "fd00::1"), "routes[0].gateway: fd00::1 is not of the destination's address family (10.1.0.0/16)"),
        (route("10.1.0.0/16", dev: "eth 0"), "routes[0].device: \"eth 0\" is not 1 to 15 bytes of [A-Za-z0-9_.-]"),
        (route("10.1.0.0/16"), "routes[0]: a route needs a gateway or a device"),
        (route(via: "10.0.0.1", scope: "site"), "routes[0].scope: \"site\" is not link, host or universe"),
    ])
    func badRoutesAreRejectedNamingTheField(_ request: PodNetwork.RouteRequest, _ message: String) {
        let error = #expect(throws: PodConfigError.self) { try PodNetwork.validate(interfaces: [], routes: [request]) }
        #expect(error?.description == message)
    }

    @Test func prefixesAndMasks() throws {
        #expect(try IPPrefix.cidr("0.0.0.0/0", field: "f").isDefault)
        #expect(try IPPrefix.cidr("::/0", field: "f").address.family == .v6)
        #expect(try IPPrefix.cidr("10.88.0.0/16", field: "f").description == "10.88.0.0/16")
        #expect(try IPPrefix.cidr("10.88.0.7/32", field: "f").length == 32)
        #expect(IPAddress("10.88.255.255")!.masked(to: 20).description == "10.88.240.0")
        #expect(IPAddress("2001:db8::ffff")!.masked(to: 112).description == "2001:db8::")
        #expect(IPAddress("010.1.1.1") == nil)
        #expect(MACAddress("52:54:00:12:34:56 ") == nil)
    }

    @Test func sysctlsUnderNetAreWrittenUnderProcSys() throws {
        let sysctls = try PodSysctl.validate(["net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_forward": "1"])
        #expect(sysctls.map(\.key) == ["net.ipv4.ip_forward", "net.ipv4.ping_group_range"])
        #expect(sysctls.map(\.path) == ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ping_group_range"])
        #expect(sysctls[1].value == "0 2147483647")
        #expect(try PodSysctl.validate([:]).isEmpty)
    }

    @Test(arguments: [
        ("kernel.shm_rmid_forced", "1"), ("net", "1"), ("net.ipv4", "1"), ("net..ipv4.x", "1"), ("net.ipv4.x.", "1"),
        ("net.ipv4/../../kernel.x", "1"), ("net.ipv4.IP_FORWARD", "1"), ("net.ipv4.ip_forward", "1\n"),
        ("net.ipv4.ip_forward", String(repeating: "1", count: 257)), (".net.ipv4.ip_forward", "1"),
    ])
    func badSysctlsAreRejected(_ key: String, _ value: String) {
        let error = #expect(throws: PodConfigError.self) { try PodSysctl.validate([key: value]) }
        #expect(error?.field.hasPrefix("sysctls[") == true)
    }

    @Test func sysctlCountIsBounded() {
        let many = Dictionary(uniqueKeysWithValues: (0..<65).map { ("net.ipv4.conf.eth\($0).forwarding", "1") })
        let error = #expect(throws: PodConfigError.self) { try PodSysctl.validate(many) }
        #expect(error?.description == "sysctls: 65 entries, at most 64")
    }
}
