/// The pod's network as the guest applies it: interfaces matched by MAC (and given another one when a
/// pre-booted VM's NIC must take the pod's), then routes. Built only by `validate`, so every value in
/// it is within the limits below.
public struct PodNetwork: Sendable, Equatable {
    public static let maxInterfaces = 16
    public static let maxAddressesPerInterface = 16
    public static let maxRoutes = 128

    public struct Interface: Sendable, Equatable {
        /// The MAC the interface ends up with.
        public var mac: MACAddress
        /// The MAC the guest device has now, by which it is found: `mac` unless the device must change it.
        public var deviceMAC: MACAddress
        public var name: String
        /// 0: leave the MTU as it is.
        public var mtu: UInt32
        public var addresses: [IPPrefix]

        /// The device has another MAC and must be given `mac`.
        public var changesMAC: Bool { deviceMAC != mac }
    }

    public enum Scope: UInt8, Sendable {
        // RT_SCOPE_* from linux/rtnetlink.h.
        case universe = 0, link = 253, host = 254

        public var name: String {
            switch self {
            case .universe: "universe"
            case .link: "link"
            case .host: "host"
            }
        }
    }

    public struct Route: Sendable, Equatable, CustomStringConvertible {
        /// 0.0.0.0/0 or ::/0 for a default route.
        public var destination: IPPrefix
        public var gateway: IPAddress?
        public var device: String?
        public var scope: Scope

        /// As `ip route` would print it: "default via 10.88.0.1 dev eth0".
        public var description: String {
            var text = destination.isDefault ? "default" : destination.description
            if let gateway { text += " via \(gateway)" }
            if let device { text += " dev \(device)" }
            if scope != (gateway == nil ? .link : .universe) { text += " scope \(scope.name)" }
            return text
        }
    }

    /// What the host sent for one interface (agent.proto NetworkInterface), before validation.
    public struct InterfaceRequest: Sendable {
        public var macAddress: String
        /// Empty: the device is found by `macAddress`.
        public var deviceMacAddress: String
        public var name: String
        public var mtu: UInt32
        public var addresses: [(address: String, prefixLength: UInt32)]

        public init(
            macAddress: String, deviceMacAddress: String = "", name: String, mtu: UInt32,
            addresses: [(address: String, prefixLength: UInt32)]
        ) {
            self.macAddress = macAddress
            self.deviceMacAddress = deviceMacAddress
            self.name = name
            self.mtu = mtu
            self.addresses = addresses
        }
    }

    /// What the host sent for one route (agent.proto Route), before validation.
    public struct RouteRequest: Sendable {
        public var destination: String
        public var gateway: String
        public var device: String
        public var scope: String

        public init(destination: String, gateway: String, device: String, scope: String) {
            self.destination = destination
            self.gateway = gateway
            self.device = device
            self.scope = scope
        }
    }

    public var interfaces: [Interface]
    /// Routes without a gateway (link routes) first, then gateway routes, each in the order sent, so
    /// that a gateway is reachable when its route is added.
    public var routes: [Route]

    /// Checks everything the host sent; the first problem is thrown, naming the field.
    public static func validate(interfaces: [InterfaceRequest], routes: [RouteRequest]) throws(PodConfigError) -> PodNetwork {
        guard interfaces.count <= maxInterfaces else {
            throw PodConfigError(field: "interfaces", reason: "\(interfaces.count) interfaces, at most \(maxInterfaces)")
        }
        guard routes.count <= maxRoutes else {
            throw PodConfigError(field: "routes", reason: "\(routes.count) routes, at most \(maxRoutes)")
        }
        var validInterfaces: [Interface] = []
        for (index, request) in interfaces.enumerated() {
            let interface = try validate(interface: request, field: "interfaces[\(index)]")
            if validInterfaces.contains(where: { $0.mac == interface.mac }) {
                throw PodConfigError(field: "interfaces[\(index)].mac_address", reason: "\(interface.mac) is listed twice")
            }
            if let other = validInterfaces.firstIndex(where: { $0.deviceMAC == interface.deviceMAC }) {
                let field = request.deviceMacAddress.isEmpty ? "mac_address" : "device_mac_address"
                throw PodConfigError(field: "interfaces[\(index)].\(field)", reason: "device \(interface.deviceMAC) is taken by interfaces[\(other)]")
            }
            if validInterfaces.contains(where: { $0.name == interface.name }) {
                throw PodConfigError(field: "interfaces[\(index)].name", reason: "\(interface.name) is listed twice")
            }
            validInterfaces.append(interface)
        }
        var validRoutes: [Route] = []
        for (index, request) in routes.enumerated() {
            validRoutes.append(try validate(route: request, field: "routes[\(index)]"))
        }
        let ordered = validRoutes.filter { $0.gateway == nil } + validRoutes.filter { $0.gateway != nil }
        return PodNetwork(interfaces: validInterfaces, routes: ordered)
    }

    static func validate(interface request: InterfaceRequest, field: String) throws(PodConfigError) -> Interface {
        let mac = try parseMAC(request.macAddress, field: "\(field).mac_address")
        let deviceMAC = try request.deviceMacAddress.isEmpty ? mac : parseMAC(request.deviceMacAddress, field: "\(field).device_mac_address")
        guard InterfaceName.isValid(request.name) else {
            throw PodConfigError(field: "\(field).name", reason: "\"\(request.name.prefix(32))\" is not 1 to 15 bytes of [A-Za-z0-9_.-]")
        }
        guard request.mtu == 0 || (68...65535).contains(request.mtu) else {
            throw PodConfigError(field: "\(field).mtu", reason: "\(request.mtu) is outside 68...65535 (0 keeps the current MTU)")
        }
        guard request.addresses.count <= maxAddressesPerInterface else {
            throw PodConfigError(field: "\(field).addresses", reason: "\(request.addresses.count) addresses, at most \(maxAddressesPerInterface)")
        }
        var addresses: [IPPrefix] = []
        for (index, address) in request.addresses.enumerated() {
            addresses.append(try IPPrefix.interfaceAddress(address.address, prefixLength: address.prefixLength, field: "\(field).addresses[\(index)]"))
        }
        return Interface(mac: mac, deviceMAC: deviceMAC, name: request.name, mtu: request.mtu, addresses: addresses)
    }

    private static func parseMAC(_ text: String, field: String) throws(PodConfigError) -> MACAddress {
        guard let mac = MACAddress(text) else {
            throw PodConfigError(field: field, reason: "\"\(text.prefix(32))\" is not xx:xx:xx:xx:xx:xx (hex)")
        }
        return mac
    }

    static func validate(route request: RouteRequest, field: String) throws(PodConfigError) -> Route {
        var gateway: IPAddress?
        if !request.gateway.isEmpty {
            guard let address = IPAddress(request.gateway) else {
                throw PodConfigError(field: "\(field).gateway", reason: "\"\(request.gateway.prefix(64))\" is not an IPv4 or IPv6 address")
            }
            gateway = address
        }
        let destination =
            request.destination.isEmpty
            ? IPPrefix(address: .any(gateway?.family ?? .v4), length: 0)
            : try IPPrefix.cidr(request.destination, field: "\(field).destination")
        if let gateway, gateway.family != destination.address.family {
            throw PodConfigError(field: "\(field).gateway", reason: "\(gateway) is not of the destination's address family (\(destination))")
        }
        var device: String?
        if !request.device.isEmpty {
            guard InterfaceName.isValid(request.device) else {
                throw PodConfigError(field: "\(field).device", reason: "\"\(request.device.prefix(32))\" is not 1 to 15 bytes of [A-Za-z0-9_.-]")
            }
            device = request.device
        }
        guard gateway != nil || device != nil else {
            throw PodConfigError(field: field, reason: "a route needs a gateway or a device")
        }
        let scope: Scope
        switch request.scope {
        // As `ip route`: a route without a gateway is on-link unless told otherwise.
        case "": scope = gateway == nil ? .link : .universe
        case "universe": scope = .universe
        case "link": scope = .link
        case "host": scope = .host
        default:
            throw PodConfigError(field: "\(field).scope", reason: "\"\(request.scope.prefix(32))\" is not link, host or universe")
        }
        return Route(destination: destination, gateway: gateway, device: device, scope: scope)
    }
}
