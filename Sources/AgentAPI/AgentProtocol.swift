/// Constants both ends of the agent protocol agree on.
public enum AgentProtocol {
    /// The `swiftkata.agent.v1` revision this build speaks; `HealthResponse.api_version` must match.
    public static let apiVersion: UInt32 = 1
    /// The agent's vsock port when the VM has a vsock device.
    public static let vsockPort: UInt32 = 1024
    /// Name of the virtio-serial port carrying the agent's ttrpc when there is no vsock.
    public static let serialPortName = "io.swiftkata.agent"
    /// Where the guest mounts the pod's shared directory; container roots and shared bind-mount sources
    /// are paths below it.
    public static let guestSharedRoot = "/run/swiftkata/shared"
    /// Largest chunk one `ReadOutput` returns; keeps every reply far below ttrpc's 4 MiB limit.
    public static let maxOutputChunk = 2 << 20
}
