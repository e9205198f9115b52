import Glibc

/// How the shim reaches the agent: vsock where the host can give VMs a vsock device, otherwise a
/// virtio-serial port bound to a unix socket. Configurable: `auto`, `vsock` or `virtio-serial`.
public enum AgentTransportSetting: String, Sendable, CaseIterable {
    case auto
    case vsock
    case virtioSerial = "virtio-serial"

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
