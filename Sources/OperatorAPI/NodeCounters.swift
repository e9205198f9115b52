/// The node's counters that outlive a pod's shim (`<state_dir>/node-counters`, a `CounterFile`):
/// every shim adds to them, `swiftkata-ctl metrics` reads them. They start again at zero when the
/// state directory does (a tmpfs: at boot), as Prometheus counters may.
public enum NodeCounters {
    public static func path(stateDirectory: String) -> String { "\(stateDirectory)/node-counters" }

    /// A pod that claimed a warm-pool VM.
    public static let warmPoolHits = "warm_pool_hits"
    /// A pod of the pool's size that found no warm VM (and booted its own), with a pool configured.
    public static let warmPoolMisses = "warm_pool_misses"
    /// Pod VMs that became ready.
    public static let podsStarted = "pods_started"
    /// A pod VM that did not start, by cause: `boot_failures:<cause>`.
    public static let bootFailurePrefix = "boot_failures:"

    /// The causes a boot failure is counted under.
    public enum BootFailureCause: String, CaseIterable, Sendable {
        /// The agent never answered, or the VM stopped while booting.
        case agentUnreachable = "agent_unreachable"
        /// The host or the pod cannot run the VM as configured (confinement, size over the cap, an agent too old).
        case precondition
        /// Out of memory, disk or descriptors on the host.
        case resources
        /// A request the runtime refuses (bad annotations, ids).
        case invalid
        /// libvirt or another host component failed.
        case host
    }

    public static func bootFailure(_ cause: BootFailureCause) -> String { bootFailurePrefix + cause.rawValue }
}
