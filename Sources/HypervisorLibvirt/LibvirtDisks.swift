import CLibvirt
import Glibc
import Hypervisor

/// Host block devices attached to a running domain as virtio-blk disks (Kubernetes block volumes),
/// each known by the serial the guest reads back.
extension LibvirtConnection {
    /// Attaches the host block device `source` to the running domain `name` as a virtio-blk disk
    /// with `serial` (the guest finds it by that), on the first free `vdX` name. The guest sees it
    /// through ACPI PCI hotplug.
    public func attachDisk(source: String, serial: String, readOnly: Bool, toDomain name: String) throws(LibvirtError) {
        let domain = try lookUpDomain(name)
        defer { virDomainFree(domain) }
        let xml = try liveXML(domain, name)
        if xml.contains("<serial>\(DomainXML.escape(serial))</serial>") { return }  // attached already
        let used = Set(Self.values(of: "target dev", in: xml))
        guard let target = (UInt8(ascii: "b")...UInt8(ascii: "z")).map({ "vd" + String(UnicodeScalar($0)) }).first(where: { !used.contains($0) }) else {
            throw LibvirtError(operation: "attaching \(source) to domain \(name)", message: "no free virtio disk name (vdb…vdz)", code: -1)
        }
        var disk = "<disk type='block' device='disk'>"
        disk += "<driver name='qemu' type='raw' cache='none' io='native'/>"
        disk += "<source dev='\(DomainXML.escape(source))'/>"
        disk += "<target dev='\(target)' bus='virtio'/>"
        disk += "<serial>\(DomainXML.escape(serial))</serial>"
        if readOnly { disk += "<readonly/>" }
        disk += "</disk>"
        if virDomainAttachDeviceFlags(domain, disk, UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) != 0 {
            throw LibvirtError.last("attaching \(source) to domain \(name)")
        }
    }

    /// Asks the running domain `name` to release the disk with `serial` (a missing one is success);
    /// the guest ejects it, and libvirt gives the host device back.
    public func detachDisk(serial: String, fromDomain name: String) throws(LibvirtError) {
        let domain = try lookUpDomain(name)
        defer { virDomainFree(domain) }
        let xml = try liveXML(domain, name)
        guard let serialRange = xml.firstRange(of: "<serial>\(DomainXML.escape(serial))</serial>"),
            let start = xml[..<serialRange.lowerBound].ranges(of: "<disk ").last?.lowerBound,
            let end = xml[serialRange.upperBound...].firstRange(of: "</disk>")?.upperBound
        else { return }
        if virDomainDetachDeviceFlags(domain, String(xml[start..<end]), UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) != 0 {
            let error = LibvirtError.last("detaching the disk \(serial) from domain \(name)")
            if !error.isNoDomain { throw error }
        }
    }

    /// Values of `attribute='…'` in `xml`, for attributes written as `element attribute`.
    static func values(of elementAttribute: String, in xml: String) -> [String] {
        xml.ranges(of: "<\(elementAttribute)='").compactMap { range in
            xml[range.upperBound...].firstIndex(of: "'").map { String(xml[range.upperBound..<$0]) }
        }
    }
}
