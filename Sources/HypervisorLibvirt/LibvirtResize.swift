import CLibvirt
import Glibc

/// The running domain's virtio-mem device (`VMDescription.Hotplug`): how much of it the guest is
/// asked to have plugged. (vCPUs need no libvirt call: the guest onlines the ones it has.)
extension LibvirtConnection {
    /// The virtio-mem device of a running domain, in MiB: its size, what the host asks the guest to
    /// have plugged, and what the guest has plugged (as QEMU last reported it, which can lag).
    public struct HotplugMemory: Sendable, Equatable {
        public var sizeMiB: Int
        public var requestedMiB: Int
        public var pluggedMiB: Int
    }

    /// The domain's virtio-mem device, nil when it has none (a VM booted without a ceiling).
    public func hotplugMemory(ofDomain name: String) throws(LibvirtError) -> HotplugMemory? {
        let domain = try lookUpDomain(name)
        defer { virDomainFree(domain) }
        return try Self.virtioMemDevice(in: liveXML(domain, name)).flatMap { Self.parse(device: $0) }
    }

    /// Asks the guest of the running domain `name` to have `mebibytes` of its virtio-mem device
    /// plugged (the guest's driver plugs or unplugs blocks towards it on its own).
    public func requestHotplugMemory(_ mebibytes: Int, ofDomain name: String) throws(LibvirtError) {
        let domain = try lookUpDomain(name)
        defer { virDomainFree(domain) }
        guard let device = Self.virtioMemDevice(in: try liveXML(domain, name)),
            let requested = device.firstRange(of: "<requested unit='KiB'>"),
            let end = device[requested.upperBound...].firstRange(of: "</requested>")
        else {
            throw LibvirtError(operation: "resizing the memory of domain \(name)", message: "the domain has no virtio-mem device", code: -1)
        }
        let updated = device[..<requested.upperBound] + "\(mebibytes << 10)" + device[end.lowerBound...]
        if virDomainUpdateDeviceFlags(domain, String(updated), UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) != 0 {
            throw LibvirtError.last("asking domain \(name) for \(mebibytes) MiB of hot-plugged memory")
        }
    }

    /// The `<memory model='virtio-mem'>…</memory>` element of a domain's XML.
    static func virtioMemDevice(in xml: String) -> Substring? {
        guard let start = xml.firstRange(of: "<memory model='virtio-mem'>"),
            let end = xml[start.upperBound...].firstRange(of: "</memory>")
        else { return nil }
        return xml[start.lowerBound..<end.upperBound]
    }

    /// Sizes from a virtio-mem element as libvirt writes a live domain's (always in KiB).
    static func parse(device: Substring) -> HotplugMemory? {
        func kibibytes(_ element: String) -> Int? {
            guard let start = device.firstRange(of: "<\(element) unit='KiB'>") else { return nil }
            return Int(device[start.upperBound...].prefix { $0.isNumber })
        }
        guard let size = kibibytes("size"), let requested = kibibytes("requested") else { return nil }
        return HotplugMemory(sizeMiB: size >> 10, requestedMiB: requested >> 10, pluggedMiB: (kibibytes("current") ?? 0) >> 10)
    }
}
