import Glibc
import SwiftKataConfig

extension AgentTransportSetting {
    /// The transport to use on this host.
    /// - Parameter vhostVsockPath: the device whose presence means QEMU can create a vsock device.
    public func resolve(vhostVsockPath: String = "/dev/vhost-vsock") -> ResolvedAgentTransport {
        switch self {
        case .vsock: return .vsock
        case .virtioSerial: return .virtioSerial
        case .auto: return access(vhostVsockPath, R_OK | W_OK) == 0 ? .vsock : .virtioSerial
        }
    }
}

public enum ResolvedAgentTransport: String, Sendable {
    case vsock
    case virtioSerial = "virtio-serial"
}
