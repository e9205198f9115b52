/// Linux capability, rlimit and mount-option names as the OCI spec writes them, with their numbers.
public enum LinuxNames {
    /// CAP_* numbers from linux/capability.h (through CAP_CHECKPOINT_RESTORE, 40).
    public static let capabilities: [String: Int] = [
        "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
        "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
        "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
        "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
        "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
        "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
        "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
        "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
        "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
    ]

    /// RLIMIT_* numbers from asm-generic/resource.h.
    public static let rlimits: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
        "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
        "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
        "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    /// MS_* flag values from linux/mount.h.
    public enum MountFlag {
        public static let rdonly: UInt = 1, nosuid: UInt = 2, nodev: UInt = 4, noexec: UInt = 8
        public static let synchronous: UInt = 16, remount: UInt = 32, mandlock: UInt = 64, dirsync: UInt = 128
        public static let noatime: UInt = 1024, nodiratime: UInt = 2048, bind: UInt = 4096, rec: UInt = 16384
        public static let unbindable: UInt = 1 << 17, `private`: UInt = 1 << 18, slave: UInt = 1 << 19, shared: UInt = 1 << 20
        public static let relatime: UInt = 1 << 21, strictatime: UInt = 1 << 24
    }

    /// Option word → (flags to set, flags to clear). Propagation options are separate.
    static let mountOptions: [String: (set: UInt, clear: UInt)] = [
        "ro": (MountFlag.rdonly, 0), "rw": (0, MountFlag.rdonly),
        // runc's recursive read-only: every submount of the bind is read-only as well.
        "rro": (MountFlag.rdonly | MountFlag.rec, 0),
        "nosuid": (MountFlag.nosuid, 0), "suid": (0, MountFlag.nosuid),
        "nodev": (MountFlag.nodev, 0), "dev": (0, MountFlag.nodev),
        "noexec": (MountFlag.noexec, 0), "exec": (0, MountFlag.noexec),
        "sync": (MountFlag.synchronous, 0), "async": (0, MountFlag.synchronous),
        "dirsync": (MountFlag.dirsync, 0), "mand": (MountFlag.mandlock, 0), "nomand": (0, MountFlag.mandlock),
        "noatime": (MountFlag.noatime, 0), "atime": (0, MountFlag.noatime),
        "nodiratime": (MountFlag.nodiratime, 0), "diratime": (0, MountFlag.nodiratime),
        "relatime": (MountFlag.relatime, 0), "norelatime": (0, MountFlag.relatime),
        "strictatime": (MountFlag.strictatime, 0), "nostrictatime": (0, MountFlag.strictatime),
        "bind": (MountFlag.bind, 0), "rbind": (MountFlag.bind | MountFlag.rec, 0),
        "remount": (MountFlag.remount, 0), "defaults": (0, 0),
    ]

    static let propagationOptions: [String: UInt] = [
        "private": MountFlag.private, "rprivate": MountFlag.private | MountFlag.rec,
        "slave": MountFlag.slave, "rslave": MountFlag.slave | MountFlag.rec,
        "shared": MountFlag.shared, "rshared": MountFlag.shared | MountFlag.rec,
        "unbindable": MountFlag.unbindable, "runbindable": MountFlag.unbindable | MountFlag.rec,
    ]

    /// CLONE_NEW* values for OCI namespace types.
    public static let namespaceFlags: [String: UInt] = [
        "mount": 0x0002_0000, "uts": 0x0400_0000, "ipc": 0x0800_0000, "pid": 0x2000_0000,
        "network": 0x4000_0000, "user": 0x1000_0000, "cgroup": 0x0200_0000,
    ]
}
