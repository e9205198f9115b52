/// Constants both ends of the agent protocol agree on.
public enum AgentProtocol {
    /// The `swiftkata.agent.v1` revision this build speaks; `HealthResponse.api_version` must match.
    public static let apiVersion: UInt32 = 1
    /// On the guest kernel's command line, enables `StartDebugConsole` (the host's `agent.debug_console`).
    public static let debugConsoleKernelFlag = "swiftkata.debug_console=1"
    /// The agent's vsock port when the VM has a vsock device.
    public static let vsockPort: UInt32 = 1024
    /// The host's vsock context id (VMADDR_CID_HOST).
    public static let hostContextID: UInt32 = 2

    /// Whether a vsock peer may talk to the agent: only the host (context id 2), and only from a
    /// port below 1024, which on the host only a privileged process (the shim, as root) can bind.
    /// Creating a vsock socket needs no privilege: without this, any local user or runc pod could
    /// dial every pod's agent and exec in it.
    public static func isTrustedVsockPeer(contextID: UInt32, port: UInt32) -> Bool {
        contextID == hostContextID && port < 1024
    }
    /// Name of the virtio-serial port carrying the agent's ttrpc when there is no vsock.
    public static let serialPortName = "io.swiftkata.agent"
    /// Where the guest mounts the pod's shared directory; container roots and shared bind-mount sources
    /// are paths below it.
    public static let guestSharedRoot = "/run/swiftkata/shared"
    /// Largest chunk one `ReadOutput` returns; keeps every reply far below ttrpc's 4 MiB limit.
    public static let maxOutputChunk = 2 << 20
}
