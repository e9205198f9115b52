// Internal declarations shared by the sk_spawn implementation files. Not part of the public API.
//
// Everything declared here that runs in the child (between clone3 and execve) is async-signal-safe:
// no malloc, no stdio, no locks, no glibc set*id wrappers; only raw system calls, stack buffers and
// memory the parent prepared before the clone.
#ifndef SK_INTERNAL_H
#define SK_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <linux/filter.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sk_spawn.h"

// Maximum length of an error message the child sends (one write, below PIPE_BUF: atomic).
#define SK_MSG_MAX 1024

// Status pipe protocol (child -> parent), all in single writes:
//   'R'            setup done, argv[0] resolved; the child now waits for start (or execs)
//   'E' message    a failure; the writer _exit(127)s right after
// EOF after 'R' means execve succeeded (the pipe is O_CLOEXEC) or the process died before exec.
#define SK_STATUS_READY 'R'
#define SK_STATUS_ERROR 'E'

// A message being composed in a fixed buffer (always NUL-terminated, silently truncated).
typedef struct sk_msg {
    char buf[SK_MSG_MAX];
    size_t len;
} sk_msg;

void sk_msg_init(sk_msg *m);
void sk_msg_add(sk_msg *m, const char *s);
void sk_msg_add_long(sk_msg *m, long v);
void sk_msg_add_hex(sk_msg *m, uint64_t v);
void sk_msg_add_errno(sk_msg *m, int err);

/// Text for an errno value from a static table ("No such file or directory"), NULL when unknown.
const char *sk_errno_text(int err);

/// Writes "/proc/self/fd/<fd>" into buf (at least 32 bytes).
void sk_fd_path(char *buf, int fd);

/// Everything the child needs, prepared by the parent before the clone. The child works on its
/// copy-on-write copy of this structure.
typedef struct sk_child {
    const sk_spawn_config *cfg;
    int status_w;             // write end of the status pipe (O_CLOEXEC)
    int pid_w;                // exec or PID-namespace join: write end of the pipe that carries the
                              // grandchild's pid
    int start_fd;             // copy of cfg->start_fd, moved above 2
    int join_pidfd;           // copy of cfg->join_pidfd, moved above 2
    int cgroup_fd;            // exec only: copy of cfg->cgroup_fd (used by the second clone)
    int stdio[3];             // stdio sources, moved above 2; -1 = /dev/null
    int console_socket;       // cfg->console_socket when terminal && console_socket > 2, else -1
    int devnull;              // /dev/null of the caller's mount namespace, opened in the child
    int cap_last_cap;         // from /proc/sys/kernel/cap_last_cap, read by the parent
    int late_caps;            // install seccomp before the final capset (see sk_spawn.c)
    unsigned long join_flags; // exec only: namespaces to join with setns
    int ns_fds[3];            // new container: namespace files to join (join_namespaces), moved above 2
    int ns_types[3];          // their CLONE_NEW* types, in the order joined (UTS, IPC, PID)
    size_t ns_count;
    char *const *exec_candidates; // argv[0] candidates (PATH lookup), tried in order
    size_t exec_candidate_count;
    int argv0_has_slash;
    struct sock_fprog seccomp;    // filter.len == 0: none
    char *const *envp;            // never NULL
} sk_child;

/// Sends "E" + the concatenation of the NULL-terminated string list + ": " + errno text on the
/// status pipe, then _exit(127). err == 0 leaves the errno part out.
_Noreturn void sk_child_fail(const sk_child *c, int err, ...);

/// New container: steps (1)-(8) and the pivot: private /, rootfs bind, mounts, default devices,
/// masked and read-only paths, read-only root, pivot_root (or MS_MOVE + chroot on an initramfs
/// root). Calls sk_child_fail on error.
void sk_setup_rootfs(sk_child *c);

#endif
