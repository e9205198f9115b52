import AgentRuntime
import CContainerSpawn
import CLinuxSys
import Glibc
import GuestAgentCore

/// Calls the C spawner (`sk_spawn`) for a spawn plan. No Swift runs in the child: all strings and
/// arrays are laid out in C memory here, before the clone.
enum Spawner {
    struct SpawnError: Error, CustomStringConvertible {
        var description: String
        /// What failed, as the spawner's errno (ENOENT: a missing executable; 0 when unknown).
        var cause: Int32 = 0
    }

    /// A created process: its pid, and the handles that let it exec (`start`).
    struct Created: Sendable {
        var pid: pid_t
        var start: StartHandles
    }

    struct Options {
        var stdio: ProcessIO.ChildEnds
        var cgroupFD: CInt = -1
        var joinPidFD: CInt = -1
        var seccompFilter: [UInt8]?
        /// New container: open namespace files to join, with their CLONE_NEW* type.
        var joinNamespaces: [(fd: CInt, type: UInt)] = []
    }

    static func spawn(_ plan: SpawnPlan, options: Options) throws(SpawnError) -> Created {
        var startPipe: [CInt] = [0, 0]
        guard linux_pipe_cloexec(&startPipe) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        let arena = CArena()
        defer { arena.free() }

        var config = sk_spawn_config()
        config.clone_flags = plan.cloneFlags
        config.join_pidfd = options.joinPidFD
        config.cgroup_fd = options.cgroupFD
        config.rootfs = arena.string(plan.rootfs)
        config.rootfs_readonly = plan.rootfsReadonly ? 1 : 0
        let mounts = arena.array(
            plan.mounts.map { step in
                sk_mount(
                    source: arena.string(step.source), destination: arena.string(step.destination),
                    type: arena.string(step.type), flags: step.flags, propagation: step.propagation,
                    data: arena.string(step.data))
            })
        config.mounts = UnsafePointer(mounts)
        config.mount_count = plan.mounts.count
        config.masked_paths = arena.stringArray(plan.maskedPaths)
        config.masked_path_count = plan.maskedPaths.count
        config.readonly_paths = arena.stringArray(plan.readonlyPaths)
        config.readonly_path_count = plan.readonlyPaths.count
        config.hostname = arena.string(plan.hostname)
        config.sysctl_keys = arena.stringArray(plan.sysctls.map(\.key))
        config.sysctl_values = arena.stringArray(plan.sysctls.map(\.value))
        config.sysctl_count = plan.sysctls.count
        let devices = arena.array(
            plan.devices.map { device in
                sk_device(
                    path: arena.string(device.path), character: device.character ? 1 : 0, major: device.major, minor: device.minor,
                    source: arena.string(device.source))
            })
        config.devices = UnsafePointer(devices)
        config.device_count = plan.devices.count
        config.create_default_devices = plan.createDefaultDevices ? 1 : 0
        config.argv = arena.stringArray(plan.argv, nullTerminated: true)
        config.envp = arena.stringArray(plan.env, nullTerminated: true)
        config.cwd = arena.string(plan.cwd)
        config.uid = plan.uid
        config.gid = plan.gid
        config.additional_gids = UnsafePointer(arena.array(plan.additionalGids))
        config.additional_gid_count = plan.additionalGids.count
        config.cap_bounding = plan.capabilities.bounding
        config.cap_effective = plan.capabilities.effective
        config.cap_permitted = plan.capabilities.permitted
        config.cap_inheritable = plan.capabilities.inheritable
        config.cap_ambient = plan.capabilities.ambient
        config.no_new_privileges = plan.noNewPrivileges ? 1 : 0
        config.rlimits = UnsafePointer(arena.array(plan.rlimits.map { sk_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }))
        config.rlimit_count = plan.rlimits.count
        if let filter = options.seccompFilter {
            config.seccomp_filter = UnsafeRawPointer(arena.array(filter))
            config.seccomp_filter_len = filter.count
        }
        config.oom_score_adj = Int32(plan.oomScoreAdj ?? 0)
        config.set_oom_score_adj = plan.oomScoreAdj == nil ? 0 : 1
        config.umask_value = plan.umask
        config.stdin_fd = options.stdio.stdin
        config.stdout_fd = options.stdio.stdout
        config.stderr_fd = options.stdio.stderr
        config.terminal = plan.terminal ? 1 : 0
        config.console_socket = options.stdio.consoleSocket
        config.start_fd = startPipe[0]
        config.join_namespaces = UnsafePointer(arena.array(options.joinNamespaces.map { sk_namespace_join(fd: $0.fd, nstype: Int32($0.type)) }))
        config.join_namespace_count = options.joinNamespaces.count

        var pid: pid_t = 0
        var statusFD: CInt = -1
        var message = [CChar](repeating: 0, count: 512)
        let result = sk_spawn(&config, &pid, &statusFD, &message, message.count)
        let cause = errno
        close(startPipe[0])
        guard result == 0 else {
            close(startPipe[1])
            throw SpawnError(description: String(cMessage: message), cause: cause)
        }
        return Created(pid: pid, start: StartHandles(start: startPipe[1], status: statusFD))
    }

    /// Lets a created process exec; fails with the exec error (e.g. a binary that is not executable).
    /// A process gets one start: a second one (after a first that failed, say) is refused.
    static func start(_ created: Created) throws(SpawnError) {
        guard let handles = created.start.take() else {
            throw SpawnError(description: "process \(created.pid) was started before (or its start failed): it can only be removed")
        }
        var message = [CChar](repeating: 0, count: 512)
        // Closes both descriptors, whatever it returns.
        guard sk_start(handles.start, handles.status, &message, message.count) == 0 else {
            throw SpawnError(description: String(cMessage: message), cause: errno)
        }
    }
}

/// C allocations that live until `free()`: strings and arrays handed to the spawner.
private final class CArena {
    private var releases: [() -> Void] = []

    func string(_ value: String?) -> UnsafePointer<CChar>? {
        guard let value else { return nil }
        let copy = strdup(value)!
        releases.append { Glibc.free(copy) }
        return UnsafePointer(copy)
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        pointer.initialize(from: values, count: values.count)
        releases.append {
            pointer.deinitialize(count: values.count)
            pointer.deallocate()
        }
        return pointer
    }

    func stringArray(_ values: [String], nullTerminated: Bool = false) -> UnsafePointer<UnsafePointer<CChar>?>? {
        var pointers = values.map { string($0) }
        if nullTerminated { pointers.append(nil) }
        return array(pointers).map { UnsafePointer($0) }
    }

    func free() {
        for release in releases { release() }
        releases.removeAll()
    }
}
