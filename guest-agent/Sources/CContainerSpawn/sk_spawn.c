// sk_spawn / sk_start: creates a container process (or an exec inside a running container).
//
// Parent (the caller, the agent, PID 1 of the VM): prepares everything that needs memory (PATH
// candidates, the seccomp program, cap_last_cap), creates the pipes and calls clone3 with the
// configured namespaces (and CLONE_INTO_CGROUP). It then waits on the status pipe for 'R' (ready)
// or 'E' + message. It never calls waitpid: the caller's reaper thread reaps every child
// (waitpid(-1)), including the short-lived intermediate process of an exec. On failure it sends
// SIGKILL to the child it created (through a pidfd, so never to a recycled pid) and returns -1.
//
// Child (no malloc, no stdio, no locks; raw system calls only):
//   signals to default and unblocked; every inherited fd closed but the ones it needs;
//   oom_score_adj (inherited by an exec's grandchild);
//   new container: setns into the namespaces to share (UTS, IPC, PID; after a PID join the same
//         second clone as an exec's), rootfs setup and pivot (sk_mounts.c), hostname, chdir;
//   exec: setns(pidfd, mnt|uts|ipc|pid|cgroup), then clone3(CLONE_PARENT [| CLONE_INTO_CGROUP]):
//         the grandchild is the caller's child and lives in the container's pid namespace; the
//         intermediate sends its pid and _exit(0)s;
//   then: rlimits, umask, stdio (+ setsid/TIOCSCTTY; with a console socket: a pty of the
//   container's /dev/ptmx whose master goes to the caller over the socket), keepcaps + bounding set +
//   groups/gid/uid, capset + ambient, no_new_privs, argv[0] lookup, 'R', wait for start, seccomp, execve.
#include "sk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define SK_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SK_EXEC_JOIN_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWCGROUP)

// struct clone_args up to CLONE_ARGS_SIZE_VER2 (with .cgroup), spelled out so that no
// <linux/sched.h> vs <sched.h> clash can happen.
struct sk_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

static char *const sk_empty_env[] = {NULL};

// ---------------------------------------------------------------------------------------------
// Child side (async-signal-safe only)
// ---------------------------------------------------------------------------------------------

static void sk_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

_Noreturn void sk_child_fail(const sk_child *c, int err, ...) {
    sk_msg m;
    sk_msg_init(&m);
    char marker[2] = {SK_STATUS_ERROR, 0};
    sk_msg_add(&m, marker);
    // The cause travels as a number before the text ("<errno>|<message>"): the parent sets errno from it.
    sk_msg_add_long(&m, err);
    sk_msg_add(&m, "|");
    va_list ap;
    va_start(ap, err);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) sk_msg_add(&m, s);
    va_end(ap);
    if (err != 0) {
        sk_msg_add(&m, ": ");
        sk_msg_add_errno(&m, err);
    }
    sk_write_all(c->status_w, m.buf, m.len);
    _exit(127);
}

static void sk_child_reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)sigaction(sig, &sa, NULL); // glibc refuses its internal signals (32, 33): harmless
    }
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/// Returns fd itself when it is > 2, else a CLOEXEC copy above 2 (0-2 get replaced by stdio).
static int sk_child_fd_above_stdio(const sk_child *c, int fd) {
    if (fd < 0 || fd > 2) return fd;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) sk_child_fail(c, errno, "dup fd", NULL);
    return copy;
}

static void sk_close_range(unsigned int lo, unsigned int hi) {
    if (lo > hi) return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
    // Kernels before 5.9: close one by one up to the fd limit.
    struct rlimit rl;
    unsigned int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max)
        max = (unsigned int)rl.rlim_cur;
    for (unsigned int fd = lo; fd <= hi && fd < max; fd++) close((int)fd);
}

/// Closes every fd above 2 except the ones in keep (which may hold -1 and duplicates). This drops
/// the caller's other fds at once, in particular the write end of our start pipe and the pipes
/// of other spawns running concurrently in other threads.
static void sk_close_fds_except(int *keep, size_t n) {
    for (size_t i = 1; i < n; i++) { // insertion sort, n is tiny
        int v = keep[i];
        size_t j = i;
        while (j > 0 && keep[j - 1] > v) {
            keep[j] = keep[j - 1];
            j--;
        }
        keep[j] = v;
    }
    unsigned int lo = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 3 || (unsigned int)keep[i] < lo) continue;
        if ((unsigned int)keep[i] > lo) sk_close_range(lo, (unsigned int)keep[i] - 1);
        lo = (unsigned int)keep[i] + 1;
    }
    sk_close_range(lo, ~0U);
}

static void sk_child_write_oom_score_adj(const sk_child *c) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) sk_child_fail(c, errno, "open /proc/self/oom_score_adj", NULL);
    sk_msg m;
    sk_msg_init(&m);
    sk_msg_add_long(&m, c->cfg->oom_score_adj);
    if (write(fd, m.buf, m.len) != (ssize_t)m.len) sk_child_fail(c, errno, "write oom_score_adj ", m.buf, NULL);
    close(fd);
}

static void sk_capset(const sk_child *c, uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)effective;
    data[1].effective = (uint32_t)(effective >> 32);
    data[0].permitted = (uint32_t)permitted;
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[0].inheritable = (uint32_t)inheritable;
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    if (syscall(SYS_capset, &header, data) < 0) {
        int err = errno;
        // Say what was asked for and what was held: the usual cause is a set that is not a
        // subset of the spawner's permitted set, or inheritable outside the bounding set.
        struct __user_cap_data_struct held[2];
        uint64_t held_permitted = 0;
        if (syscall(SYS_capget, &header, held) == 0)
            held_permitted = (uint64_t)held[0].permitted | ((uint64_t)held[1].permitted << 32);
        sk_msg e, p, i, h;
        sk_msg_init(&e);
        sk_msg_add_hex(&e, effective);
        sk_msg_init(&p);
        sk_msg_add_hex(&p, permitted);
        sk_msg_init(&i);
        sk_msg_add_hex(&i, inheritable);
        sk_msg_init(&h);
        sk_msg_add_hex(&h, held_permitted);
        sk_child_fail(c, err, "capset (effective ", e.buf, ", permitted ", p.buf, ", inheritable ", i.buf,
                      "; held permitted ", h.buf, ")", NULL);
    }
}

static uint64_t sk_current_permitted(const sk_child *c) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) sk_child_fail(c, errno, "capget", NULL);
    return (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
}

static void sk_final_caps(const sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;
    sk_capset(c, cfg->cap_effective, cfg->cap_permitted, cfg->cap_inheritable);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        sk_child_fail(c, errno, "clear ambient capabilities", NULL);
    for (int cap = 0; cap < 64; cap++) {
        if (!(cfg->cap_ambient & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap, 0, 0) < 0) {
            sk_msg m;
            sk_msg_init(&m);
            sk_msg_add_long(&m, cap);
            sk_child_fail(c, errno, "raise ambient capability ", m.buf, NULL);
        }
    }
}

/// Finds the executable for argv[0] among the candidates the parent prepared (in the new root,
/// after the credential switch so that the X_OK check is the user's).
static const char *sk_child_lookup(const sk_child *c) {
    const char *argv0 = c->cfg->argv[0];
    int best_err = ENOENT;
    for (size_t i = 0; i < c->exec_candidate_count; i++) {
        const char *cand = c->exec_candidates[i];
        struct stat st;
        if (stat(cand, &st) < 0) {
            if (errno != ENOENT && errno != ENOTDIR && best_err == ENOENT) best_err = errno;
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            if (best_err == ENOENT) best_err = S_ISDIR(st.st_mode) ? EISDIR : EACCES;
            continue;
        }
        if (faccessat(AT_FDCWD, cand, X_OK, 0) < 0) {
            best_err = errno;
            continue;
        }
        return cand;
    }
    if (c->argv0_has_slash) sk_child_fail(c, best_err, "exec ", argv0, NULL);
    if (best_err == ENOENT) sk_child_fail(c, ENOENT, "exec ", argv0, ": executable file not found in $PATH", NULL);
    sk_child_fail(c, best_err, "exec ", argv0, " (in $PATH)", NULL);
}

/// Console socket (runc's --console-socket): a pty of the devpts the process sees as /dev/pts (the
/// container's, since this runs after the pivot or the setns), so that ttyname() finds its terminal.
/// The slave becomes the controlling terminal and stdin/stdout/stderr; the master goes to the caller.

/* A message of one part (`iov`) with `control_len` bytes of ancillary data at `control`, zeroed. */
static void sk_init_msghdr(struct msghdr *msg, struct iovec *iov, char *control, size_t control_len) {
    memset(control, 0, control_len);
    memset(msg, 0, sizeof(*msg));
    msg->msg_iov = iov;
    msg->msg_iovlen = 1;
    msg->msg_control = control;
    msg->msg_controllen = control_len;
}

static void sk_child_console(const sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) sk_child_fail(c, errno, "console: open /dev/ptmx", NULL);
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) sk_child_fail(c, errno, "console: unlock the pty (TIOCSPTLCK)", NULL);
    unsigned int number = 0;
    if (ioctl(master, TIOCGPTN, &number) < 0) sk_child_fail(c, errno, "console: pty number (TIOCGPTN)", NULL);
    sk_msg slave_path;
    sk_msg_init(&slave_path);
    sk_msg_add(&slave_path, "/dev/pts/");
    sk_msg_add_long(&slave_path, (long)number);
    // The peer of this very master, opened through the devpts mount the master came from: no path
    // lookup in a tree that the container's processes may have changed (an exec runs as root here,
    // and the fchown below must not follow a planted link). The fd still reads as /dev/pts/N.
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) sk_child_fail(c, errno, "console: open ", slave_path.buf, " (TIOCGPTPEER)", NULL);
    // Owned by the process's user (and group: "tty" cannot be looked up here), as runc does.
    if (fchown(slave, (uid_t)cfg->uid, (gid_t)cfg->gid) < 0)
        sk_child_fail(c, errno, "console: chown ", slave_path.buf, NULL);
    if (fchmod(slave, 0620) < 0) sk_child_fail(c, errno, "console: chmod ", slave_path.buf, NULL);
    if (setsid() < 0) sk_child_fail(c, errno, "console: setsid", NULL);
    if (ioctl(slave, TIOCSCTTY, 0) < 0) sk_child_fail(c, errno, "console: ioctl TIOCSCTTY ", slave_path.buf, NULL);
    for (int i = 0; i < 3; i++) {
        if (dup2(slave, i) < 0) sk_child_fail(c, errno, "console: dup2 ", slave_path.buf, NULL);
    }
    close(slave);

    char payload = 'M';
    struct iovec iov = {&payload, 1};
    union {
        struct cmsghdr header;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg;
    sk_init_msghdr(&msg, &iov, control.buf, sizeof(control.buf));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(c->console_socket, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) sk_child_fail(c, errno, "console: send the pty master over the console socket", NULL);
    if (n != 1) sk_child_fail(c, 0, "console: short send on the console socket", NULL);
    close(master);
    close(c->console_socket);
}

/// Steps common to a new container and an exec, from rlimits to execve.
static _Noreturn void sk_child_process(sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;

    // (11) rlimits, while still root (raising a hard limit needs CAP_SYS_RESOURCE).
    for (size_t i = 0; i < cfg->rlimit_count; i++) {
        struct rlimit rl;
        rl.rlim_cur = (rlim_t)cfg->rlimits[i].soft;
        rl.rlim_max = (rlim_t)cfg->rlimits[i].hard;
        if (setrlimit((__rlimit_resource_t)cfg->rlimits[i].resource, &rl) < 0) {
            sk_msg m;
            sk_msg_init(&m);
            sk_msg_add_long(&m, cfg->rlimits[i].resource);
            sk_child_fail(c, errno, "setrlimit resource ", m.buf, NULL);
        }
    }
    // (13) umask.
    umask((mode_t)(cfg->umask_value & 07777));

    // (14) stdio: every source is above 2 (see sk_child_main), so dup2 cannot clobber another one.
    // With a console socket the container's pty replaces them (still root: the slave gets chowned).
    if (c->console_socket >= 0) {
        sk_child_console(c);
    } else {
        for (int i = 0; i < 3; i++) {
            int src = c->stdio[i] >= 0 ? c->stdio[i] : c->devnull;
            if (dup2(src, i) < 0) sk_child_fail(c, errno, "dup2 stdio", NULL);
        }
    }
    // Whatever else is still open must not reach the container (our status pipe closes at exec).
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 1024; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (cfg->terminal && c->console_socket < 0) {
        if (setsid() < 0) sk_child_fail(c, errno, "setsid", NULL);
        if (ioctl(0, TIOCSCTTY, 0) < 0) sk_child_fail(c, errno, "ioctl TIOCSCTTY", NULL);
    }

    // (15)-(16) credentials. The bounding set is dropped while CAP_SETPCAP is still effective;
    // KEEPCAPS keeps the permitted set across setuid so that capset can pick from it afterwards.
    // Raw system calls: glibc's set*id would try to signal the caller's other threads.
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) sk_child_fail(c, errno, "prctl PR_SET_KEEPCAPS", NULL);
    for (int cap = 0; cap <= c->cap_last_cap; cap++) {
        if (cap < 64 && (cfg->cap_bounding & (1ULL << cap))) continue;
        if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) < 0 && errno != EINVAL) {
            sk_msg m;
            sk_msg_init(&m);
            sk_msg_add_long(&m, cap);
            sk_child_fail(c, errno, "drop capability ", m.buf, " from the bounding set", NULL);
        }
    }
    if (syscall(SYS_setgroups, cfg->additional_gid_count, cfg->additional_gid_count ? cfg->additional_gids : NULL) < 0)
        sk_child_fail(c, errno, "setgroups", NULL);
    if (syscall(SYS_setresgid, cfg->gid, cfg->gid, cfg->gid) < 0) {
        sk_msg m;
        sk_msg_init(&m);
        sk_msg_add_long(&m, (long)cfg->gid);
        sk_child_fail(c, errno, "setgid ", m.buf, NULL);
    }
    if (syscall(SYS_setresuid, cfg->uid, cfg->uid, cfg->uid) < 0) {
        sk_msg m;
        sk_msg_init(&m);
        sk_msg_add_long(&m, (long)cfg->uid);
        sk_child_fail(c, errno, "setuid ", m.buf, NULL);
    }
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) sk_child_fail(c, errno, "prctl PR_SET_KEEPCAPS", NULL);
    if (c->late_caps) {
        // seccomp without no_new_privs needs CAP_SYS_ADMIN when the filter is installed (after
        // start): keep the permitted set effective until then.
        uint64_t permitted = sk_current_permitted(c);
        sk_capset(c, permitted, permitted, cfg->cap_inheritable);
    } else {
        sk_final_caps(c);
    }
    // (17) no_new_privs.
    if (cfg->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        sk_child_fail(c, errno, "prctl PR_SET_NO_NEW_PRIVS", NULL);

    const char *path = sk_child_lookup(c);

    // Ready: the parent returns from sk_spawn.
    char ready = SK_STATUS_READY;
    sk_write_all(c->status_w, &ready, 1);

    if (c->start_fd >= 0) {
        char b;
        ssize_t n;
        do {
            n = read(c->start_fd, &b, 1);
        } while (n < 0 && errno == EINTR);
        if (n < 0) sk_child_fail(c, errno, "wait for start", NULL);
        if (n == 0) sk_child_fail(c, 0, "start cancelled: start pipe closed without a start byte", NULL);
        close(c->start_fd);
    }

    // (18) seccomp, as late as possible so that the filter does not see our own setup.
    if (c->seccomp.len > 0 && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &c->seccomp) < 0)
        sk_child_fail(c, errno, "install seccomp filter", NULL);
    if (c->late_caps) sk_final_caps(c);

    // (19) execve.
    execve(path, (char *const *)cfg->argv, c->envp);
    sk_child_fail(c, errno, "exec ", path, NULL);
}

/// After a setns(CLONE_NEWPID), which only affects children: clones the process that lives in that
/// pid namespace. CLONE_PARENT makes the caller its parent. clone3 returns the pid as seen from the
/// intermediate's own pid namespace, which setns does not change: the caller's. The intermediate
/// reports that pid and _exit(0)s; this returns in the new process only.
static void sk_child_clone_into_pidns(sk_child *c) {
    struct sk_clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PARENT;
    if (c->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)c->cgroup_fd;
    }
    args.exit_signal = 0; // must be 0 with CLONE_PARENT: the child inherits ours (SIGCHLD)
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) sk_child_fail(c, errno, "clone3 into the container's pid namespace", NULL);
    if (pid == 0) {
        close(c->pid_w);
        c->pid_w = -1;
        if (c->cgroup_fd >= 0) close(c->cgroup_fd);
        c->cgroup_fd = -1;
        return;
    }
    pid_t reported = (pid_t)pid;
    sk_write_all(c->pid_w, &reported, sizeof(reported));
    _exit(0);
}

/// Exec in a running container: join its namespaces, then clone again so that the new process is
/// in the container's pid namespace.
static _Noreturn void sk_child_exec_intermediate(sk_child *c) {
    if (setns(c->join_pidfd, (int)c->join_flags) < 0)
        sk_child_fail(c, errno, "setns into the container's namespaces", NULL);
    sk_child_clone_into_pidns(c);
    close(c->join_pidfd);
    const char *cwd = c->cfg->cwd != NULL && c->cfg->cwd[0] != '\0' ? c->cfg->cwd : "/";
    if (chdir(cwd) < 0) sk_child_fail(c, errno, "chdir ", cwd, NULL);
    sk_child_process(c);
}

static const char *sk_namespace_name(int nstype) {
    switch (nstype) {
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWPID: return "pid";
    default: return "?";
    }
}

/// Writes the container's sysctls through the caller's /proc: IPC and UTS parameters are those of the
/// writing task's namespaces, which are the container's by now.
static void sk_child_write_sysctls(const sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->sysctl_count; i++) {
        char path[256] = "/proc/sys/";
        size_t length = strlen(path);
        for (const char *k = cfg->sysctl_keys[i]; *k != '\0' && length + 1 < sizeof path; k++) path[length++] = *k == '.' ? '/' : *k;
        path[length] = '\0';
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) sk_child_fail(c, errno, "sysctl ", cfg->sysctl_keys[i], NULL);
        size_t value_length = strlen(cfg->sysctl_values[i]);
        ssize_t written;
        do {
            written = write(fd, cfg->sysctl_values[i], value_length);
        } while (written < 0 && errno == EINTR);
        if (written != (ssize_t)value_length) sk_child_fail(c, written < 0 ? errno : EIO, "sysctl ", cfg->sysctl_keys[i], " = ", cfg->sysctl_values[i], NULL);
        close(fd);
    }
}

/// New container: joins the shared namespaces (sorted UTS, IPC, PID by the parent) before anything
/// uses them; after a PID join it continues as the grandchild (sk_child_clone_into_pidns).
static void sk_child_join_namespaces(sk_child *c) {
    int pid_joined = 0;
    for (size_t i = 0; i < c->ns_count; i++) {
        if (setns(c->ns_fds[i], c->ns_types[i]) < 0)
            sk_child_fail(c, errno, "setns into the shared ", sk_namespace_name(c->ns_types[i]), " namespace", NULL);
        close(c->ns_fds[i]);
        c->ns_fds[i] = -1;
        pid_joined |= c->ns_types[i] == CLONE_NEWPID;
    }
    if (pid_joined) sk_child_clone_into_pidns(c);
}

static _Noreturn void sk_child_main(sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;
    // Not dumpable until exec: while it holds the agent's descriptors and joins a running
    // container's namespaces, no process of that container may ptrace it or open its /proc files
    // (the CVE-2019-5736 class). execve makes the workload dumpable again as usual.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) sk_child_fail(c, errno, "prctl PR_SET_DUMPABLE", NULL);
    sk_child_reset_signals();

    // Move the fds we keep above 2, then close all the others.
    c->status_w = sk_child_fd_above_stdio(c, c->status_w);
    c->pid_w = sk_child_fd_above_stdio(c, c->pid_w);
    c->start_fd = sk_child_fd_above_stdio(c, c->start_fd);
    c->join_pidfd = sk_child_fd_above_stdio(c, c->join_pidfd);
    c->cgroup_fd = sk_child_fd_above_stdio(c, c->cgroup_fd);
    for (int i = 0; i < 3; i++) c->stdio[i] = sk_child_fd_above_stdio(c, c->stdio[i]);
    c->console_socket = sk_child_fd_above_stdio(c, c->console_socket);
    for (size_t i = 0; i < c->ns_count; i++) c->ns_fds[i] = sk_child_fd_above_stdio(c, c->ns_fds[i]);
    int keep[] = {c->status_w, c->pid_w, c->start_fd, c->join_pidfd, c->cgroup_fd,
                  c->stdio[0],  c->stdio[1], c->stdio[2], c->console_socket,
                  c->ns_fds[0], c->ns_fds[1], c->ns_fds[2]};
    sk_close_fds_except(keep, sizeof(keep) / sizeof(keep[0]));

    umask(022); // for the mount points and files created during setup
    c->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (c->devnull < 0) sk_child_fail(c, errno, "open /dev/null", NULL);
    c->devnull = sk_child_fd_above_stdio(c, c->devnull);

    // (12) oom_score_adj, here while the caller's /proc is reachable (an exec's grandchild inherits it).
    if (cfg->set_oom_score_adj) sk_child_write_oom_score_adj(c);

    if (cfg->join_pidfd >= 0) sk_child_exec_intermediate(c);
    int uts_joined = 0;
    for (size_t i = 0; i < c->ns_count; i++) uts_joined |= c->ns_types[i] == CLONE_NEWUTS;
    sk_child_join_namespaces(c);
    sk_child_write_sysctls(c);

    sk_setup_rootfs(c);
    // (9) hostname, only in a UTS namespace of the container (its own or a joined one).
    if (cfg->hostname != NULL && ((cfg->clone_flags & CLONE_NEWUTS) || uts_joined)) {
        if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
            sk_child_fail(c, errno, "sethostname ", cfg->hostname, NULL);
    }
    // (10) working directory.
    const char *cwd = cfg->cwd != NULL && cfg->cwd[0] != '\0' ? cfg->cwd : "/";
    if (chdir(cwd) < 0) sk_child_fail(c, errno, "chdir ", cwd, NULL);
    sk_child_process(c);
}

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

static void sk_set_error(char *error, size_t error_len, const char *text, int err) {
    if (error == NULL || error_len == 0) return;
    sk_msg m;
    sk_msg_init(&m);
    sk_msg_add(&m, text);
    if (err != 0) {
        sk_msg_add(&m, ": ");
        sk_msg_add_errno(&m, err);
    }
    size_t n = m.len < error_len - 1 ? m.len : error_len - 1;
    memcpy(error, m.buf, n);
    error[n] = '\0';
}

/* A child's error report after its marker, "<errno>|<message>": returns the errno (0 when the report
 * has none) and points *text at the message. */
static int sk_parse_child_report(const char *report, const char **text) {
    int err = 0;
    const char *p = report;
    while (*p >= '0' && *p <= '9' && err < 100000) err = err * 10 + (*p++ - '0');
    if (*p != '|') {
        *text = report;
        return 0;
    }
    *text = p + 1;
    return err;
}

static ssize_t sk_read_retry(int fd, void *buf, size_t len) {
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/// Reads until EOF or len bytes.
static ssize_t sk_read_until_eof(int fd, char *buf, size_t len) {
    size_t total = 0;
    while (total < len) {
        ssize_t n = sk_read_retry(fd, buf + total, len - total);
        if (n < 0) return -1;
        if (n == 0) break;
        total += (size_t)n;
    }
    return (ssize_t)total;
}

static int sk_read_cap_last_cap(void) {
    int last = CAP_LAST_CAP;
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return last;
    char buf[16];
    ssize_t n = sk_read_retry(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return last;
    buf[n] = '\0';
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (end == buf || v < 0 || v > 255) return last;
    return (int)v;
}

static const char *sk_env_path(const char *const *envp) {
    if (envp == NULL) return NULL;
    for (size_t i = 0; envp[i] != NULL; i++) {
        if (strncmp(envp[i], "PATH=", 5) == 0) return envp[i] + 5;
    }
    return NULL;
}

/// Builds the exec candidates for argv[0]: itself when it has a '/', else every PATH entry
/// joined with it (an empty entry means the working directory, as execvp does).
static char **sk_build_candidates(const sk_spawn_config *cfg, size_t *count, int *has_slash) {
    const char *argv0 = cfg->argv[0];
    *has_slash = strchr(argv0, '/') != NULL;
    if (*has_slash) {
        char **list = calloc(1, sizeof(char *));
        if (list == NULL) return NULL;
        list[0] = strdup(argv0);
        if (list[0] == NULL) {
            free(list);
            return NULL;
        }
        *count = 1;
        return list;
    }
    const char *path = sk_env_path(cfg->envp);
    if (path == NULL) path = SK_DEFAULT_PATH;
    size_t entries = 1;
    for (const char *p = path; *p != '\0'; p++) entries += *p == ':';
    char **list = calloc(entries, sizeof(char *));
    if (list == NULL) return NULL;
    size_t n = 0, argv0_len = strlen(argv0);
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dir_len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *dir = dir_len == 0 ? "." : p;
        if (dir_len == 0) dir_len = 1;
        char *cand = malloc(dir_len + 1 + argv0_len + 1);
        if (cand == NULL) {
            for (size_t i = 0; i < n; i++) free(list[i]);
            free(list);
            return NULL;
        }
        memcpy(cand, dir, dir_len);
        cand[dir_len] = '/';
        memcpy(cand + dir_len + 1, argv0, argv0_len + 1);
        list[n++] = cand;
        if (end == NULL) break;
        p = end + 1;
    }
    *count = n;
    return list;
}

static void sk_free_candidates(char **list, size_t count) {
    if (list == NULL) return;
    for (size_t i = 0; i < count; i++) free(list[i]);
    free(list);
}

static void sk_close_if_open(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/// join_namespaces: new containers only, at most one per type, none of them also in clone_flags.
static int sk_check_namespace_joins(const sk_spawn_config *cfg, int exec, char *error, size_t error_len) {
    if (cfg->join_namespace_count == 0) return 0;
    const char *problem = NULL;
    int seen = 0;
    if (exec) problem = "sk_spawn: join_namespaces is for new containers, not for an exec";
    else if (cfg->join_namespaces == NULL || cfg->join_namespace_count > 3) problem = "sk_spawn: join_namespaces must list 1 to 3 namespaces";
    for (size_t i = 0; problem == NULL && i < cfg->join_namespace_count; i++) {
        int type = cfg->join_namespaces[i].nstype;
        if (type != CLONE_NEWUTS && type != CLONE_NEWIPC && type != CLONE_NEWPID)
            problem = "sk_spawn: join_namespaces: only CLONE_NEWUTS, CLONE_NEWIPC and CLONE_NEWPID can be joined";
        else if (seen & type) problem = "sk_spawn: join_namespaces lists a namespace type twice";
        else if ((unsigned long)type & cfg->clone_flags) problem = "sk_spawn: a namespace type is both joined and in clone_flags";
        else if (cfg->join_namespaces[i].fd < 0) problem = "sk_spawn: join_namespaces has a negative fd";
        seen |= type;
    }
    if (problem == NULL) return 0;
    sk_set_error(error, error_len, problem, EINVAL);
    return -1;
}

/// Fills c->ns_fds/ns_types from cfg->join_namespaces in the order UTS, IPC, PID.
static void sk_order_namespace_joins(const sk_spawn_config *cfg, sk_child *c) {
    static const int order[] = {CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID};
    c->ns_count = 0;
    for (size_t i = 0; i < 3; i++) c->ns_fds[i] = -1;
    for (size_t o = 0; o < 3; o++) {
        for (size_t i = 0; i < cfg->join_namespace_count; i++) {
            if (cfg->join_namespaces[i].nstype != order[o]) continue;
            c->ns_fds[c->ns_count] = cfg->join_namespaces[i].fd;
            c->ns_types[c->ns_count++] = order[o];
        }
    }
}

int sk_spawn(const sk_spawn_config *cfg, pid_t *pid_out, int *status_fd_out, char *error, size_t error_len) {
    if (error != NULL && error_len > 0) error[0] = '\0';
    if (pid_out != NULL) *pid_out = -1;
    if (status_fd_out != NULL) *status_fd_out = -1;
    if (cfg == NULL || pid_out == NULL || status_fd_out == NULL) {
        sk_set_error(error, error_len, "sk_spawn: missing argument", EINVAL);
        return -1;
    }
    if (cfg->argv == NULL || cfg->argv[0] == NULL || cfg->argv[0][0] == '\0') {
        sk_set_error(error, error_len, "sk_spawn: empty argv", EINVAL);
        return -1;
    }
    int join = cfg->join_pidfd >= 0;
    if (!join && (cfg->rootfs == NULL || cfg->rootfs[0] != '/')) {
        sk_set_error(error, error_len, "sk_spawn: rootfs must be an absolute path", EINVAL);
        return -1;
    }
    if (!join && !(cfg->clone_flags & CLONE_NEWNS)) {
        // The rootfs setup remounts / and pivots: never in the caller's own mount namespace.
        sk_set_error(error, error_len, "sk_spawn: a new container needs CLONE_NEWNS in clone_flags", EINVAL);
        return -1;
    }
    if (sk_check_namespace_joins(cfg, join, error, error_len) < 0) return -1;
    if (cfg->seccomp_filter_len % sizeof(struct sock_filter) != 0 ||
        cfg->seccomp_filter_len / sizeof(struct sock_filter) > BPF_MAXINSNS ||
        (cfg->seccomp_filter_len > 0 && cfg->seccomp_filter == NULL)) {
        sk_set_error(error, error_len, "sk_spawn: seccomp filter size is not a valid BPF program", EINVAL);
        return -1;
    }

    sk_child c;
    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    c.status_w = c.pid_w = -1;
    c.start_fd = cfg->start_fd;
    c.join_pidfd = cfg->join_pidfd;
    c.cgroup_fd = join ? cfg->cgroup_fd : -1;
    c.stdio[0] = cfg->stdin_fd;
    c.stdio[1] = cfg->stdout_fd;
    c.stdio[2] = cfg->stderr_fd;
    c.console_socket = cfg->terminal && cfg->console_socket > 2 ? cfg->console_socket : -1;
    if (c.console_socket >= 0) c.stdio[0] = c.stdio[1] = c.stdio[2] = -1; // replaced by the pty
    c.devnull = -1;
    c.cap_last_cap = sk_read_cap_last_cap();
    c.join_flags = cfg->clone_flags != 0 ? cfg->clone_flags : SK_EXEC_JOIN_FLAGS;
    sk_order_namespace_joins(cfg, &c);
    // An exec, or a new container joining a pid namespace, reaches its final pid by a second clone.
    int two_step = join || (c.ns_count > 0 && c.ns_types[c.ns_count - 1] == CLONE_NEWPID);
    c.envp = cfg->envp != NULL ? (char *const *)cfg->envp : sk_empty_env;
    c.seccomp.len = (unsigned short)(cfg->seccomp_filter_len / sizeof(struct sock_filter));
    c.seccomp.filter = (struct sock_filter *)(uintptr_t)cfg->seccomp_filter;
    c.late_caps = c.seccomp.len > 0 && !cfg->no_new_privileges && !(cfg->cap_effective & (1ULL << CAP_SYS_ADMIN));

    size_t candidate_count = 0;
    char **candidates = sk_build_candidates(cfg, &candidate_count, &c.argv0_has_slash);
    if (candidates == NULL) {
        sk_set_error(error, error_len, "sk_spawn: out of memory", ENOMEM);
        return -1;
    }
    c.exec_candidates = candidates;
    c.exec_candidate_count = candidate_count;

    int status_pipe[2] = {-1, -1}, pid_pipe[2] = {-1, -1};
    int pidfd = -1;
    if (pipe2(status_pipe, O_CLOEXEC) < 0 || (two_step && pipe2(pid_pipe, O_CLOEXEC) < 0)) {
        sk_set_error(error, error_len, "pipe", errno);
        sk_close_if_open(&status_pipe[0]);
        sk_close_if_open(&status_pipe[1]);
        sk_free_candidates(candidates, candidate_count);
        return -1;
    }
    c.status_w = status_pipe[1];
    c.pid_w = pid_pipe[1];

    struct sk_clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | (join ? 0 : (uint64_t)cfg->clone_flags);
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (!join && cfg->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cfg->cgroup_fd;
    }

    // No signal handler of the caller may run in the child before it resets them.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) sk_child_main(&c);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);

    sk_free_candidates(candidates, candidate_count);
    sk_close_if_open(&status_pipe[1]);
    sk_close_if_open(&pid_pipe[1]);
    if (pid < 0) {
        sk_set_error(error, error_len, join ? "clone3 (exec)" : "clone3 (new container namespaces/cgroup)", clone_errno);
        sk_close_if_open(&status_pipe[0]);
        sk_close_if_open(&pid_pipe[0]);
        return -1;
    }

    // Wait for ready or an error.
    char message[SK_MSG_MAX + 1];
    int ok = 0, child_reported = 0, failure_errno = 0;
    char first = 0;
    ssize_t n = sk_read_retry(status_pipe[0], &first, 1);
    if (n == 1 && first == SK_STATUS_READY) {
        ok = 1;
    } else if (n == 1 && first == SK_STATUS_ERROR) {
        child_reported = 1;
        ssize_t m = sk_read_until_eof(status_pipe[0], message, SK_MSG_MAX);
        message[m > 0 ? m : 0] = '\0';
        const char *text;
        failure_errno = sk_parse_child_report(message, &text);
        sk_set_error(error, error_len, text, 0);
    } else if (n == 0) {
        sk_set_error(error, error_len, "spawn: the child exited during setup without reporting", 0);
    } else if (n < 0) {
        failure_errno = errno;
        sk_set_error(error, error_len, "spawn: read status pipe", failure_errno);
    } else {
        sk_set_error(error, error_len, "spawn: unexpected status byte", 0);
    }

    pid_t result = (pid_t)pid;
    if (two_step) {
        pid_t grandchild = -1;
        ssize_t m = sk_read_until_eof(pid_pipe[0], (char *)&grandchild, sizeof(grandchild));
        if (m != (ssize_t)sizeof(grandchild)) grandchild = -1;
        result = grandchild;
        if (ok && grandchild <= 0) {
            ok = 0;
            sk_set_error(error, error_len, "spawn: intermediate process did not report the process id", 0);
        }
        // A grandchild that reported an error exits on its own; only an unexplained failure
        // needs the kill (by pid: it is not our child, so there is no pidfd for it here).
        if (!ok && !child_reported && grandchild > 0) kill(grandchild, SIGKILL);
    }
    sk_close_if_open(&pid_pipe[0]);

    if (!ok) {
        if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        sk_close_if_open(&pidfd);
        sk_close_if_open(&status_pipe[0]);
        *pid_out = result; // for the caller's bookkeeping: its exit reaches the reaper
        errno = failure_errno;
        return -1;
    }
    sk_close_if_open(&pidfd);
    *pid_out = result;
    *status_fd_out = status_pipe[0];
    return 0;
}

int sk_start(int start_write_fd, int status_fd, char *error, size_t error_len) {
    if (error != NULL && error_len > 0) error[0] = '\0';
    int result = 0;
    if (start_write_fd >= 0) {
        // Writing to a pipe whose reader died raises SIGPIPE: block it and swallow our own.
        sigset_t pipe_set, saved, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &saved);
        sigpending(&pending);
        int was_pending = sigismember(&pending, SIGPIPE);
        char b = 'S';
        ssize_t n;
        do {
            n = write(start_write_fd, &b, 1);
        } while (n < 0 && errno == EINTR);
        int write_errno = errno;
        if (n < 0 && write_errno == EPIPE && !was_pending) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        close(start_write_fd);
        // EPIPE: the child is gone; its message (if any) is on the status pipe.
        if (n < 0 && write_errno != EPIPE) {
            sk_set_error(error, error_len, "start: write start pipe", write_errno);
            errno = write_errno;
            result = -1;
        }
    }
    if (status_fd < 0) return result;
    char message[SK_MSG_MAX + 1];
    ssize_t m = sk_read_until_eof(status_fd, message, SK_MSG_MAX);
    int read_errno = errno;
    close(status_fd);
    if (m < 0) {
        sk_set_error(error, error_len, "start: read status pipe", read_errno);
        errno = read_errno;
        return -1;
    }
    if (m > 0) {
        message[m] = '\0';
        const char *text = message;
        int err = message[0] == SK_STATUS_ERROR ? sk_parse_child_report(message + 1, &text) : 0;
        sk_set_error(error, error_len, text, 0);
        errno = err;
        return -1;
    }
    return result;
}

int sk_receive_console(int socket_fd, int *master_out, char *error, size_t error_len) {
    if (error != NULL && error_len > 0) error[0] = '\0';
    if (master_out == NULL) {
        sk_set_error(error, error_len, "console: missing argument", EINVAL);
        return -1;
    }
    *master_out = -1;
    char payload[1];
    struct iovec iov = {payload, sizeof(payload)};
    union {
        struct cmsghdr header;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    struct msghdr msg;
    sk_init_msghdr(&msg, &iov, control.buf, sizeof(control.buf));
    ssize_t n;
    do {
        n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        sk_set_error(error, error_len, "console: recvmsg on the console socket", errno);
        return -1;
    }
    // Keep the first fd received, close any other one (a misbehaving sender must not leak fds here).
    int master = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (master < 0) {
                master = fd;
            } else {
                close(fd);
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        sk_close_if_open(&master);
        sk_set_error(error, error_len, "console: control message truncated (more fds than expected)", 0);
        return -1;
    }
    if (master < 0) {
        sk_set_error(error, error_len,
                     n == 0 ? "console: the console socket was closed before the pty master arrived"
                            : "console: message without a file descriptor on the console socket",
                     0);
        return -1;
    }
    (void)fcntl(master, F_SETFD, FD_CLOEXEC); // MSG_CMSG_CLOEXEC did it already; cheap insurance
    unsigned int number;
    if (ioctl(master, TIOCGPTN, &number) < 0) {
        int err = errno;
        close(master);
        sk_set_error(error, error_len, "console: the received fd is not a pty master", err);
        return -1;
    }
    *master_out = master;
    return 0;
}
