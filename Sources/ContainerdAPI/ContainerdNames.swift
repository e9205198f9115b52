/// Names containerd expects on the wire: event topics and `Any` type URLs (written bare, without
/// `type.googleapis.com/`, because containerd 1.6 resolves only the bare form).
public enum ContainerdNames {
    public enum Topic {
        public static let taskCreate = "/tasks/create"
        public static let taskStart = "/tasks/start"
        public static let taskExecAdded = "/tasks/exec-added"
        public static let taskExecStarted = "/tasks/exec-started"
        public static let taskExit = "/tasks/exit"
        public static let taskDelete = "/tasks/delete"
        public static let taskOOM = "/tasks/oom"
        public static let taskPaused = "/tasks/paused"
        public static let taskResumed = "/tasks/resumed"
        public static let taskCheckpointed = "/tasks/checkpointed"
    }

    public enum TypeURL {
        public static let ociProcess = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        public static let ociLinuxResources = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
        public static let cgroupsV1Metrics = "io.containerd.cgroups.v1.Metrics"
        public static let cgroupsV2Metrics = "io.containerd.cgroups.v2.Metrics"
        public static let runcProcessDetails = "containerd.runc.v1.ProcessDetails"

        /// `containerd.events.<Type>` for an event payload.
        public static func event(_ type: String) -> String { "containerd.events.\(type)" }
    }

    public static let taskService = "containerd.task.v2.Task"
    public static let eventsService = "containerd.services.events.ttrpc.v1.Events"
}
