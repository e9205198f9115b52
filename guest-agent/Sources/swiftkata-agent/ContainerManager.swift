import AgentRuntime
import CLinuxSys
import Glibc
import Logging
import NIOCore
import NIOPosix
import SwiftKataOS
import TTRPC

/// The containers of this pod and their processes. All bookkeeping is serialised by the actor;
/// waiting (exits, output) happens outside it, so a parked Wait never blocks other calls.
actor ContainerManager {
    typealias ManagerError = AgentError

    final class Process: Sendable {
        let pid: pid_t
        let io: ProcessIO
        let created: Spawner.Created
        init(pid: pid_t, io: ProcessIO, created: Spawner.Created) {
            self.pid = pid
            self.io = io
            self.created = created
        }
    }

    private final class Container {
        let id: String
        let cgroup: Cgroup
        let initProcess: Process
        /// The container's seccomp program, applied to its execs too.
        let seccompFilter: [UInt8]?
        var started = false
        var execs: [String: Process] = [:]
        init(id: String, cgroup: Cgroup, initProcess: Process, seccompFilter: [UInt8]?) {
            self.id = id
            self.cgroup = cgroup
            self.initProcess = initProcess
            self.seccompFilter = seccompFilter
        }
    }

    private var containers: [String: Container] = [:]
    private let reaper: Reaper
    let oomWatcher: OOMWatcher
    private let logger: Logger
    /// Where the pod's shared file system is mounted; container roots live below it.
    let sharedRoot: String

    init(reaper: Reaper, oomWatcher: OOMWatcher, sharedRoot: String, logger: Logger) {
        self.reaper = reaper
        self.oomWatcher = oomWatcher
        self.sharedRoot = sharedRoot
        self.logger = logger
    }

    static func validateID(_ id: String, what: String = "container id") throws(ManagerError) {
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == 0x2d || byte == 0x5f || byte == 0x2e
        }
        guard !id.isEmpty, id.utf8.count <= 128, allowed, id.first != "." else {
            throw ManagerError(code: .invalid, description: "\(what) \"\(id.prefix(140))\" is not [A-Za-z0-9_.-]{1,128}")
        }
    }

    /// Resolves the spec's root.path (relative to the shared file system) to a directory below it.
    func resolveRootfs(_ path: String) throws(ManagerError) -> String {
        let components = path.split(separator: "/")
        guard !path.hasPrefix("/"), !components.isEmpty, !components.contains(where: { $0 == ".." || $0 == "." }) else {
            throw ManagerError(code: .invalid, description: "root.path \(path) must be relative to the shared file system, without . or ..")
        }
        let resolved = sharedRoot + "/" + components.joined(separator: "/")
        var info = stat()
        guard lstat(resolved, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw ManagerError(code: .invalid, description: "rootfs \(path) does not exist in the shared file system")
        }
        return resolved
    }

    /// Points the spec's device entries of the host's block volumes at the disks the host attached
    /// (found by serial; the spec's numbers are the host's), adding an entry where the spec has none.
    private func attachBlockDevices(
        _ devices: [(serial: String, containerPath: String)], to plan: inout SpawnPlan, containerID: String
    ) async throws {
        for device in devices {
            guard var node = SpawnPlanner.deviceNode(at: device.containerPath, character: false, major: 0, minor: 0) else {
                throw ManagerError(code: .invalid, description: "block device path \(device.containerPath.prefix(128)) is not a plain path below /dev")
            }
            guard let disk = await GuestBlockDevices.wait(serial: device.serial, timeout: .seconds(10)) else {
                throw ManagerError(
                    code: .failedPrecondition,
                    description: "container \(containerID): the disk \(device.serial) for \(device.containerPath) never appeared in the guest")
            }
            (node.major, node.minor, node.source) = (disk.major, disk.minor, disk.path)
            plan.devices.removeAll { $0.path == node.path }
            plan.devices.append(node)
        }
    }

    func create(
        id: String, spec specBytes: [UInt8], terminal: Bool, stdin: Bool, blockDevices: [(serial: String, containerPath: String)] = []
    ) async throws -> pid_t {
        try Self.validateID(id)
        guard containers[id] == nil else { throw ManagerError(code: .alreadyExists, description: "container \(id): already exists") }
        let clock = ContinuousClock()
        let started = clock.now
        let spec: OCISpec
        var plan: SpawnPlan
        let seccompFilter: [UInt8]?
        do {
            spec = try OCISpec.decode(specBytes)
            plan = try SpawnPlanner.container(spec: spec, rootfs: try resolveRootfs(spec.root?.path ?? "\(id)/rootfs"))
            seccompFilter = try spec.linux?.seccomp.map { profile throws(SpecError) in try SeccompCompiler.compile(profile) }
        } catch let error as SpecError {
            throw ManagerError(code: .invalid, description: error.description)
        }
        plan.terminal = terminal
        try await attachBlockDevices(blockDevices, to: &plan, containerID: id)
        let planned = clock.now
        let namespaces = try openJoinedNamespaces(plan.joinNamespaces)
        defer { for namespace in namespaces { close(namespace.fd) } }
        let cgroup = try Cgroup.create(for: id)
        do {
            try cgroup.apply(spec.linux?.resources)
            let (pending, ends) = try await ProcessIO.Pending.make(terminal: terminal, stdin: stdin)
            let cgroupFD = try cgroup.openDirectory()
            defer { close(cgroupFD) }
            let created: Spawner.Created
            let io: ProcessIO
            let spawning = clock.now
            do {
                let finalPlan = plan
                created = try await Self.blocking {
                    try Spawner.spawn(finalPlan, options: .init(stdio: ends, cgroupFD: cgroupFD, seccompFilter: seccompFilter, joinNamespaces: namespaces))
                }
                reaper.childSpawned()
            } catch {
                reaper.childSpawned()
                ends.close()
                await pending.cancel()
                throw error
            }
            ends.close()
            do {
                io = try await pending.complete()
            } catch {
                kill(created.pid, SIGKILL)
                created.start.discard()
                throw error
            }
            containers[id] = Container(id: id, cgroup: cgroup, initProcess: Process(pid: created.pid, io: io, created: created), seccompFilter: seccompFilter)
            oomWatcher.watch(containerID: id, cgroup: cgroup)
            let done = clock.now
            logger.info(
                "container created",
                metadata: [
                    "container": "\(id)", "pid": "\(created.pid)", "plan_ms": "\((planned - started).milliseconds)",
                    "cgroup_io_ms": "\((spawning - planned).milliseconds)", "spawn_ms": "\((done - spawning).milliseconds)",
                ])
            return created.pid
        } catch {
            cgroup.remove()
            throw ManagerError(spawning: "creating container \(id)", error, otherwise: .invalid)
        }
    }

    /// Opens the namespace files a new container joins (`/proc/<pid>/ns/<type>`). Each pid must be the
    /// init of a container created here whose exit the reaper has not seen; that is checked again after
    /// the open, so the file opened is that process's (a pid is not reused before it is reaped).
    private func openJoinedNamespaces(_ joins: [NamespaceJoin]) throws(ManagerError) -> [(fd: CInt, type: UInt)] {
        var opened: [(fd: CInt, type: UInt)] = []
        do throws(ManagerError) {
            for join in joins {
                let field = "linux.namespaces: \(join.kind.rawValue) path \(join.path)"
                guard let owner = containers.values.first(where: { $0.initProcess.pid == join.pid }) else {
                    throw ManagerError(code: .invalid, description: "\(field): pid \(join.pid) is not the init process of a container in this pod")
                }
                let exited = ManagerError(code: .failedPrecondition, description: "\(field): container \(owner.id) (pid \(join.pid)) has exited")
                guard !reaper.hasExited(join.pid) else { throw exited }
                let fd = open(join.path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    throw ManagerError(code: .failedPrecondition, description: "\(field): container \(owner.id): \(String(cString: strerror(errno)))")
                }
                opened.append((fd, join.cloneFlag))
                guard !reaper.hasExited(join.pid) else { throw exited }
            }
        } catch {
            for namespace in opened { close(namespace.fd) }
            throw error
        }
        return opened
    }

    func start(id: String) async throws -> pid_t {
        let container = try lookup(id)
        guard !container.started else { throw ManagerError(code: .failedPrecondition, description: "container \(id) already started") }
        let created = container.initProcess.created
        do {
            try await Self.blocking { try Spawner.start(created) }
        } catch {
            throw ManagerError(spawning: "starting container \(id)", error, otherwise: .failedPrecondition)
        }
        container.started = true
        let pid = container.initProcess.pid
        logger.info("container started", metadata: ["container": "\(id)", "pid": "\(pid)"])
        let reaper = reaper
        Task { [weak self] in
            _ = await reaper.wait(for: pid)
            await self?.killRemaining(of: id, initPID: pid)
        }
        return pid
    }

    /// A container ends with its init, as with runc: what is left in its cgroup (background children,
    /// execs) is killed. A container with its own PID namespace gets that from the kernel; one in the
    /// pod's namespace would otherwise keep them running, and holding its output open.
    private func killRemaining(of id: String, initPID: pid_t) {
        guard let container = containers[id], container.initProcess.pid == initPID else { return }
        try? container.cgroup.killAll()
    }

    /// Creates and starts an exec inside a started container.
    func exec(id: String, execID: String, process processBytes: [UInt8], terminal: Bool, stdin: Bool) async throws -> pid_t {
        let container = try lookup(id)
        try Self.validateID(execID, what: "exec id")
        guard container.execs[execID] == nil else { throw ManagerError(code: .alreadyExists, description: "exec \(execID): already exists") }
        guard container.started else { throw ManagerError(code: .failedPrecondition, description: "container \(id) is not running") }
        var plan: SpawnPlan
        do {
            plan = try SpawnPlanner.exec(process: try OCIProcess.decode(processBytes))
        } catch {
            throw ManagerError(code: .invalid, description: error.description)
        }
        plan.terminal = terminal
        let pidfd = linux_pidfd_open(container.initProcess.pid)
        guard pidfd >= 0 else { throw ManagerError(code: .failedPrecondition, description: "container \(id) init is gone") }
        defer { close(pidfd) }
        let cgroupFD = try container.cgroup.openDirectory()
        defer { close(cgroupFD) }
        let (pending, ends) = try await ProcessIO.Pending.make(terminal: terminal, stdin: stdin)
        let finalPlan = plan
        let filter = container.seccompFilter
        let created: Spawner.Created
        do {
            created = try await Self.blocking {
                try Spawner.spawn(finalPlan, options: .init(stdio: ends, cgroupFD: cgroupFD, joinPidFD: pidfd, seccompFilter: filter))
            }
        } catch {
            reaper.childSpawned()
            ends.close()
            await pending.cancel()
            throw ManagerError(spawning: "exec \(execID) in \(id)", error, otherwise: .invalid)
        }
        reaper.childSpawned()
        ends.close()
        let io: ProcessIO
        do {
            io = try await pending.complete()
        } catch {
            kill(created.pid, SIGKILL)
            created.start.discard()
            throw ManagerError(code: .invalid, description: "exec \(execID) in \(id): \(error)")
        }
        do {
            try await Self.blocking { try Spawner.start(created) }
        } catch {
            await io.close()
            throw ManagerError(spawning: "exec \(execID) in \(id)", error, otherwise: .invalid)
        }
        logger.info("exec started", metadata: ["container": "\(id)", "exec": "\(execID)", "pid": "\(created.pid)"])
        container.execs[execID] = Process(pid: created.pid, io: io, created: created)
        return created.pid
    }

    /// Starts an operator's shell in the guest's root (`DebugConsole`), kept as container
    /// `@console-<consoleID>` in a cgroup of its own: the process and stdio calls reach it as they
    /// reach a container's init, and `remove` ends it with everything it started.
    func startDebugConsole(consoleID: String, rows: UInt16, columns: UInt16) async throws -> (pid: pid_t, containerID: String) {
        guard DebugConsole.isEnabled() else {
            throw ManagerError(
                code: .failedPrecondition,
                description: "the debug console is disabled in this VM (the host's configuration sets agent.debug_console = false)")
        }
        guard consoleID.utf8.count <= 64 else { throw ManagerError(code: .invalid, description: "console id longer than 64 bytes") }
        try Self.validateID(consoleID, what: "console id")
        let id = DebugConsole.containerID(for: consoleID)
        guard containers[id] == nil else { throw ManagerError(code: .alreadyExists, description: "console \(consoleID): already exists") }
        let cgroup = try Cgroup.create(for: id)
        let started: (pid: pid_t, master: CInt)
        do {
            started = try DebugConsole.start(rows: rows, columns: columns)
        } catch {
            cgroup.remove()
            throw ManagerError(code: .failedPrecondition, description: error.description)
        }
        reaper.childSpawned()
        _ = try? cgroup.write("cgroup.procs", "\(started.pid)")
        let io: ProcessIO
        do { io = try await ProcessIO.terminal(master: started.master) } catch {
            kill(started.pid, SIGKILL)
            cgroup.remove()
            throw ManagerError(code: .internalError, description: "debug console: \(error)")
        }
        let container = Container(
            id: id, cgroup: cgroup, initProcess: Process(pid: started.pid, io: io, created: .init(pid: started.pid, start: .used())),
            seccompFilter: nil)
        container.started = true
        containers[id] = container
        logger.notice("debug console started", metadata: ["console": "\(consoleID)", "pid": "\(started.pid)"])
        return (started.pid, id)
    }

    func process(id: String, execID: String) throws -> Process {
        let container = try lookup(id)
        if execID.isEmpty { return container.initProcess }
        guard let process = container.execs[execID] else { throw ManagerError(code: .notFound, description: "exec \(execID) in \(id): not found") }
        return process
    }

    func signal(id: String, execID: String, signal: Int32, all: Bool) throws {
        let container = try lookup(id)
        guard (1...64).contains(signal) else { throw ManagerError(code: .invalid, description: "signal \(signal) is out of range") }
        if all && execID.isEmpty {
            for pid in container.cgroup.pids() { kill(pid, signal) }
            return
        }
        let target = try process(id: id, execID: execID)
        guard kill(target.pid, signal) == 0 else {
            throw ManagerError(code: .notFound, description: "process \(target.pid): \(String(cString: strerror(errno)))")
        }
    }

    func setPaused(id: String, _ paused: Bool) throws {
        do { try lookup(id).cgroup.freeze(paused) } catch let error as Cgroup.CgroupError {
            throw ManagerError(code: .failedPrecondition, description: error.description)
        }
    }

    func cgroup(id: String) throws -> Cgroup { try lookup(id).cgroup }

    /// The pid of each exec of container `id` (in this PID namespace) with its exec id.
    func execIDs(id: String) throws -> [pid_t: String] {
        var ids: [pid_t: String] = [:]
        for (execID, process) in try lookup(id).execs { ids[process.pid] = execID }
        return ids
    }

    /// Removes every container (the pod is going away).
    func removeAll() async {
        for id in containers.keys.sorted() {
            try? await remove(id: id)
        }
    }

    /// Kills what is left, releases stdio and the cgroup. The container is forgotten.
    func remove(id: String) async throws {
        let container = try lookup(id)
        let clock = ContinuousClock()
        let started = clock.now
        containers[id] = nil
        oomWatcher.unwatch(containerID: id)
        try? container.cgroup.killAll()
        for process in [container.initProcess] + Array(container.execs.values) {
            kill(process.pid, SIGKILL)
            await process.io.close()
            process.created.start.discard()  // a no-op once started: the start closed them
        }
        for process in [container.initProcess] + Array(container.execs.values) {
            _ = await reaper.wait(for: process.pid)
            reaper.forget(process.pid)
        }
        let reaped = clock.now
        container.cgroup.remove()
        logger.info(
            "container removed",
            metadata: [
                "container": "\(id)", "ms": "\((clock.now - started).milliseconds)", "cgroup_rmdir_ms": "\((clock.now - reaped).milliseconds)",
            ])
    }

    /// Runs a call that blocks until a child reports back (spawn, start) on NIO's thread pool, so the
    /// event loops (one, with one vCPU) keep serving meanwhile.
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    private func lookup(_ id: String) throws(ManagerError) -> Container {
        guard let container = containers[id] else { throw ManagerError(code: .notFound, description: "container \(id): not found") }
        return container
    }
}
