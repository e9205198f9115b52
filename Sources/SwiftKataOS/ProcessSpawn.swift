import Glibc

/// Starts host programs: the one posix_spawn of swiftkata's Swift code. The child starts with no
/// blocked signals (a daemon that blocks SIGTERM does not hand that on) and, on request, with every
/// signal at its default action (undoing a parent that ignores SIGPIPE or SIGTERM).
public enum ProcessSpawn {
    /// What the child's descriptors become, applied in order before exec.
    public enum FileAction: Sendable, Equatable {
        case open(CInt, path: String, flags: CInt, mode: mode_t = 0)
        case duplicate(CInt, to: CInt)
        case close(CInt)
        /// Closes every descriptor from this one up (those without FD_CLOEXEC included).
        case closeFrom(CInt)
    }

    public struct Options: Sendable {
        public var fileActions: [FileAction] = []
        /// "NAME=value" entries; nil keeps this process's environment.
        public var environment: [String]? = nil
        public var defaultSignalActions = false
        /// Puts the child in a process group of its own (containerd's shim daemon).
        public var newProcessGroup = false
        public init() {}
    }

    /// Starts `executable` (an absolute path, or a name looked up in PATH) with `argv` (argv[0]
    /// included) and returns its pid.
    public static func spawn(_ executable: String, argv: [String], options: Options = Options()) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for action in options.fileActions {
            switch action {
            case .open(let fd, let path, let flags, let mode): posix_spawn_file_actions_addopen(&actions, fd, path, flags, mode)
            case .duplicate(let fd, let target): posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .close(let fd): posix_spawn_file_actions_addclose(&actions, fd)
            case .closeFrom(let lowest): closeDescriptors(from: lowest, in: &actions)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var flags = POSIX_SPAWN_SETSIGMASK
        if options.defaultSignalActions {
            var all = sigset_t()
            sigemptyset(&all)
            for number in 1..<CInt(32) where number != SIGKILL && number != SIGSTOP { sigaddset(&all, number) }
            posix_spawnattr_setsigdefault(&attributes, &all)
            flags |= POSIX_SPAWN_SETSIGDEF
        }
        if options.newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnvironment: [UnsafeMutablePointer<CChar>?]? = options.environment.map { $0.map { strdup($0) } + [nil] }
        defer {
            cArguments.forEach { free($0) }
            cEnvironment?.forEach { free($0) }
        }
        var pid = pid_t()
        var status: CInt = 0
        // ETXTBSY: the file was open for writing in some process at exec, typically a child that
        // another thread of ours was starting just then and that inherited the writer's descriptor
        // until its own exec. It passes within moments; give it a few tries.
        for attempt in 0..<8 {
            status = withEnvironment(cEnvironment) { environment in
                executable.hasPrefix("/")
                    ? posix_spawn(&pid, executable, &actions, &attributes, cArguments, environment)
                    : posix_spawnp(&pid, executable, &actions, &attributes, cArguments, environment)
            }
            guard status == ETXTBSY else { break }
            usleep(UInt32(1000 << attempt))
        }
        guard status == 0 else { throw SystemError("spawn", path: executable, errno: .init(rawValue: status)) }
        return pid
    }

    private static func withEnvironment(
        _ environment: [UnsafeMutablePointer<CChar>?]?, _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> CInt
    ) -> CInt {
        guard let environment else { return body(environ) }
        return environment.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// Adds "close every fd from `lowest` up" to `actions`: glibc's
    /// `posix_spawn_file_actions_addclosefrom_np` (2.34+, which Swift's Glibc module does not
    /// export), else a close for each fd open now without FD_CLOEXEC.
    private static func closeDescriptors(from lowest: CInt, in actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt
        if let handle = dlopen(nil, RTLD_NOW) {
            defer { dlclose(handle) }
            if let symbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np"),
                unsafeBitCast(symbol, to: CloseFrom.self)(&actions, lowest) == 0
            {
                return
            }
        }
        for name in directoryEntries("/proc/self/fd") {
            guard let fd = CInt(name), fd >= lowest else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
    }

    /// The exit status of a waited-for child as a shell shows it: a signal death reads as 128 + signal.
    public static func shellStatus(_ status: CInt) -> CInt {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
