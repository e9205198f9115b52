import CLibvirt
import Glibc

/// What a libvirt connection reports about itself, for diagnostics (swiftkata-check).
public struct LibvirtVersions: Sendable, Equatable {
    /// The hypervisor driver's name, "QEMU" for qemu:/// URIs.
    public var driver: String
    /// The libvirt version of the daemon behind the connection, e.g. "9.0.0".
    public var libvirt: String
    /// The hypervisor's version (QEMU's for the QEMU driver), or nil when the driver does not know it.
    public var hypervisor: String?

    public init(driver: String, libvirt: String, hypervisor: String?) {
        self.driver = driver
        self.libvirt = libvirt
        self.hypervisor = hypervisor
    }

    /// libvirt's encoding: major * 1,000,000 + minor * 1,000 + release.
    static func format(_ version: UInt) -> String {
        "\(version / 1_000_000).\(version / 1_000 % 1_000).\(version % 1_000)"
    }
}

extension LibvirtConnection {
    /// The driver name, libvirt version and hypervisor version of this connection.
    public func versions() throws(LibvirtError) -> LibvirtVersions {
        guard let type = virConnectGetType(connection) else { throw LibvirtError.last("reading the driver type") }
        var libraryVersion: UInt = 0
        guard virConnectGetLibVersion(connection, &libraryVersion) == 0 else { throw LibvirtError.last("reading the libvirt version") }
        var hypervisorVersion: UInt = 0
        guard virConnectGetVersion(connection, &hypervisorVersion) == 0 else { throw LibvirtError.last("reading the hypervisor version") }
        return LibvirtVersions(
            driver: String(cString: type),
            libvirt: LibvirtVersions.format(libraryVersion),
            hypervisor: hypervisorVersion == 0 ? nil : LibvirtVersions.format(hypervisorVersion))
    }
}

extension LibvirtConnection {
    /// Asks for the domain capabilities of `emulator` (TCG, type "qemu"): libvirt looks its cached
    /// QEMU capabilities up, re-probing QEMU first when it finds them invalid.
    public func lookUpDomainCapabilities(emulator: String) throws(LibvirtError) {
        guard let xml = virConnectGetDomainCapabilities(connection, emulator, nil, nil, "qemu", 0) else {
            throw LibvirtError.last("reading the domain capabilities of \(emulator)")
        }
        free(xml)
    }
}
