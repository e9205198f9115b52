// sk_spawn: creates a container process (or an exec inside a running container) with no Swift code
// running between fork and exec. The Swift agent translates the OCI spec into sk_spawn_config; this C
// code does the namespace, mount, credential, seccomp and stdio steps in the child, then waits for
// "start" and calls execve.
#ifndef SK_SPAWN_H
#define SK_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One mount, applied in order inside the new mount namespace, relative to the new root.
typedef struct sk_mount {
    const char *source;        // may be NULL (e.g. for proc/tmpfs)
    const char *destination;   // absolute path inside the container; resolved without leaving the root
    const char *type;          // "bind" or a filesystem type; NULL means bind
    unsigned long flags;       // MS_* flags (MS_BIND, MS_REC, MS_RDONLY, MS_NOSUID, ...)
    unsigned long propagation; // MS_PRIVATE / MS_SLAVE / MS_SHARED (| MS_REC), 0 = leave as is
    const char *data;          // filesystem options, may be NULL
} sk_mount;

typedef struct sk_rlimit {
    int resource;              // RLIMIT_*
    uint64_t soft;
    uint64_t hard;
} sk_rlimit;

/// A namespace that a new container joins instead of getting a new one of that type.
typedef struct sk_namespace_join {
    int fd;                      // an open namespace file (e.g. /proc/<pid>/ns/uts); the caller keeps it
                                 // open until sk_spawn returns and closes it afterwards
    int nstype;                  // CLONE_NEWUTS, CLONE_NEWIPC or CLONE_NEWPID
} sk_namespace_join;

/// A device node of the spec, below /dev.
typedef struct sk_device {
    const char *path;            // relative to /dev, e.g. "net/tun" (validated by the caller: no "..")
    int character;               // 1: character device, 0: block device
    unsigned int major, minor;
    const char *source;          // the caller's node to bind (e.g. "/dev/vdb"); NULL: /dev/<path>
} sk_device;

typedef struct sk_spawn_config {
    // --- namespaces and cgroup ---
    unsigned long clone_flags;   // CLONE_NEW* for a new container (CLONE_NEWNS is required); 0 for an exec.
                                 // For an exec a non-zero value selects the namespaces to join instead of
                                 // the default CLONE_NEWNS|NEWUTS|NEWIPC|NEWPID|NEWCGROUP.
    int join_pidfd;              // exec: pidfd of the container's init, joined with setns (all its
                                 // namespaces but net/user); -1 for a new container
    int cgroup_fd;               // directory fd of a cgroup v2 group to start in (CLONE_INTO_CGROUP); -1 = none

    // --- filesystem (new containers only; ignored when join_pidfd >= 0) ---
    const char *rootfs;          // absolute path of the container's root in the caller's mount namespace
    int rootfs_readonly;
    const sk_mount *mounts;
    size_t mount_count;
    const char *const *masked_paths;   // bind /dev/null over files, empty read-only tmpfs over dirs
    size_t masked_path_count;
    const char *const *readonly_paths; // bind-remount read-only
    size_t readonly_path_count;
    const char *hostname;        // NULL = keep; ignored unless the container has a UTS namespace of its
                                 // own (CLONE_NEWUTS) or joins one (join_namespaces)
    int create_default_devices;  // populate /dev with null, zero, full, random, urandom, tty, ptmx, pts, shm, fd links
                                 // (only when `mounts` mounts a file system, not a bind, on /dev; the nodes
                                 // are bind mounts of the caller's /dev/<name>)

    // --- process ---
    const char *const *argv;     // argv[0] is looked up in PATH from envp when it has no '/'
    const char *const *envp;
    const char *cwd;             // NULL = "/"
    uint32_t uid;
    uint32_t gid;
    const uint32_t *additional_gids;
    size_t additional_gid_count;
    // capability sets as bitmasks of CAP_* numbers (bit n = capability n)
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int no_new_privileges;
    const sk_rlimit *rlimits;
    size_t rlimit_count;
    const void *seccomp_filter;  // struct sock_filter[] compiled by the caller (libseccomp export), NULL = none.
                                 // Installed after the start byte, right before execve. Without
                                 // no_new_privileges (and without CAP_SYS_ADMIN in cap_effective) it is
                                 // installed before the final capset/ambient raise, so the filter must allow
                                 // capset, prctl and execve.
    size_t seccomp_filter_len;   // in bytes
    int oom_score_adj;
    int set_oom_score_adj;       // apply oom_score_adj when non-zero
    uint32_t umask_value;        // applied with umask(); use 022 by default

    // --- stdio: dup'd onto 0, 1, 2 (-1 = /dev/null) ---
    int stdin_fd, stdout_fd, stderr_fd; // ignored (pass -1) when the console socket is used, see below
    int terminal;                // the process gets a controlling terminal (setsid + TIOCSCTTY): without a
                                 // console socket stdin_fd must be a pty slave (of the caller's devpts,
                                 // so `tty` inside the container says "not a tty"); with one, see below

    // --- synchronisation ---
    int start_fd;                // child blocks reading 1 byte from it before execve; -1 = exec at once.
                                 // The write end must be O_CLOEXEC; closing it without writing cancels the
                                 // process (it exits 127, sk_start reports "start cancelled ...").

    // --- console (appended last: older callers that zero the struct keep working) ---
    int console_socket;          // A connected AF_UNIX socket (SOCK_STREAM or SOCK_SEQPACKET), -1 = none.
                                 // Used only when `terminal` is non-zero AND console_socket > 2 (so that a
                                 // zero-initialised struct means "none"; callers should still set -1).
                                 // Like runc's --console-socket: inside the container (a new container:
                                 // after the mounts and pivot_root; an exec: after joining the namespaces)
                                 // the child opens the container's /dev/ptmx, unlocks it, opens its slave
                                 // (TIOCGPTPEER, i.e. /dev/pts/N of the container's devpts), chowns the
                                 // slave to uid:gid with mode 0620, calls setsid + TIOCSCTTY, dups the
                                 // slave onto 0, 1 and 2 (stdin_fd/stdout_fd/stderr_fd are ignored) and
                                 // sends the master over this socket (sendmsg, SCM_RIGHTS, 1 byte of
                                 // payload). When sk_spawn returns 0 the master is already queued on the
                                 // socket: receive it with sk_receive_console (it does not block then),
                                 // and size the window through it (TIOCSWINSZ) before sk_start if wanted.
                                 // When sk_spawn fails a master may or may not have been queued: close or
                                 // drain the socket. The container needs a devpts on /dev/pts (typically
                                 // "newinstance,ptmxmode=0666") and /dev/ptmx (a link to pts/ptmx, as
                                 // create_default_devices makes); otherwise sk_spawn fails with e.g.
                                 // "console: open /dev/ptmx: No such file or directory". The socket is
                                 // not closed by sk_spawn and does not reach the container.

    // --- shared namespaces (new containers only; appended last: a zeroed struct joins none) ---
    const sk_namespace_join *join_namespaces; // at most one per type; a joined type must not be in
    size_t join_namespace_count;              // clone_flags. The child joins them with setns right after
                                 // oom_score_adj, before the mounts: UTS, IPC, then PID. Joining a PID
                                 // namespace only affects children, so the child then clones once more
                                 // (CLONE_PARENT, like an exec): that grandchild becomes the container, its
                                 // pid is the one returned, and the intermediate exits 0 at once (the
                                 // caller's reaper must accept its exit). An exec (join_pidfd >= 0) must
                                 // not set any.

    // --- sysctls (new containers only; appended last: a zeroed struct writes none) ---
    const char *const *sysctl_keys;   // e.g. "kernel.shm_rmid_forced": written as /proc/sys/kernel/shm_rmid_forced
    const char *const *sysctl_values; // right after the namespaces are created or joined, before the mounts,
    size_t sysctl_count;              // so they land in the container's own (IPC, UTS) namespaces. The
                                      // caller validates the keys (namespaced ones only, no "..").

    // --- device nodes (new containers with create_default_devices only; appended last) ---
    const sk_device *devices;    // each bound from the caller's /dev/<path> into the container's
    size_t device_count;         // /dev/<path> (parents created) when the caller's node exists with
                                 // the same type and numbers; skipped otherwise
} sk_spawn_config;

/// Creates the process. On success returns 0, stores its pid (in the caller's pid namespace) in
/// *pid_out and a status fd in *status_fd_out: it reaches EOF when execve succeeded, or yields an
/// error message when the exec failed after start. Setup errors (bad mount, missing binary,
/// credential failure, ...) happen before this returns: then it returns -1 and writes a message
/// such as "mount /proc: Operation not permitted" into error (NUL-terminated, truncated to error_len).
/// The child is reaped by the caller (waitpid) in every case where a pid was created: sk_spawn never
/// calls waitpid. On failure it SIGKILLs the child it created (a child that reported an error exits
/// 127 by itself) and still stores the pid in *pid_out (-1 when none was created). An exec, and a new
/// container joining a PID namespace, go through a short-lived intermediate child (setns, then clone
/// with CLONE_PARENT) which exits 0 at once: its pid is never returned, so the caller's reaper must
/// accept exits of pids it does not know.
/// Must be called with CAP_SYS_ADMIN and the other capabilities the configuration hands out.
int sk_spawn(const sk_spawn_config *config, pid_t *pid_out, int *status_fd_out, char *error, size_t error_len);

/// After sk_spawn with a start_fd: lets the child exec (writes one byte to start_write_fd, closes it)
/// and waits on status_fd for the exec result. Returns 0 when execve succeeded, -1 with a message
/// and errno set to the cause (ENOENT for a missing executable; 0 when none is known) otherwise. Closes status_fd. start_write_fd may be -1 (no start pipe: only waits for the exec).
/// EOF on status_fd means the exec happened or the process died before it (its status reaches the reaper).
int sk_start(int start_write_fd, int status_fd, char *error, size_t error_len);

/// Receives the pty master that a child sent over console_socket (see sk_spawn_config): one
/// recvmsg of the 1-byte message with its SCM_RIGHTS fd. On success returns 0 and stores the master
/// (O_CLOEXEC) in *master_out; the caller owns it (read/write the terminal, TIOCSWINSZ to resize).
/// Returns -1 with a message (and *master_out = -1) when the socket fails or is closed, the message
/// carries no fd, or the fd is not a pty master. Blocks until a message arrives: call it after
/// sk_spawn returned 0, when the master is already queued.
int sk_receive_console(int socket_fd, int *master_out, char *error, size_t error_len);

#ifdef __cplusplus
}
#endif

#endif
