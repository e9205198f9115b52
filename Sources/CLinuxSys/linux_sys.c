#define _GNU_SOURCE
#include "linux_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

const int linux_O_PATH = O_PATH;
const int linux_AT_EMPTY_PATH = AT_EMPTY_PATH;
// include/uapi/linux/openat2.h
const uint64_t linux_RESOLVE_NO_XDEV = 0x01;
const uint64_t linux_RESOLVE_NO_MAGICLINKS = 0x02;
const uint64_t linux_RESOLVE_NO_SYMLINKS = 0x04;
const uint64_t linux_RESOLVE_BENEATH = 0x08;

// include/uapi/linux/mount.h
const unsigned int linux_OPEN_TREE_CLONE = 1;
const unsigned int linux_OPEN_TREE_CLOEXEC = O_CLOEXEC;
const unsigned int linux_AT_RECURSIVE = 0x8000;
const unsigned int linux_MOVE_MOUNT_F_EMPTY_PATH = 0x00000004;
const unsigned int linux_MOVE_MOUNT_T_EMPTY_PATH = 0x00000040;
const uint64_t linux_MOUNT_ATTR_RDONLY = 0x00000001;
const uint64_t linux_MOUNT_ATTR_NOSUID = 0x00000002;
const uint64_t linux_MOUNT_ATTR_NODEV = 0x00000004;
const uint64_t linux_MOUNT_ATTR_NOEXEC = 0x00000008;

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct linux_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

int linux_open_tree(int dirfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

int linux_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr) {
    struct linux_mount_attr attr = {.attr_set = attr_set, .attr_clr = attr_clr};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr);
}

int linux_mount_set_propagation(int dirfd, const char *path, unsigned int flags, uint64_t propagation) {
    struct linux_mount_attr attr = {.propagation = propagation};
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr);
}

int linux_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

struct linux_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

int linux_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int linux_open_pty(int *master, int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    char name[PATH_MAX];
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof name) != 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

int linux_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int linux_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

#if defined(__x86_64__)
#include <x86intrin.h>

/// One reading of the TSC and the raw monotonic clock taken together: the clock read between two
/// TSC reads, kept only when nothing (a preemption, an interrupt) came between them.
static int tsc_clock_pair(unsigned long long *tsc, long long *nanoseconds) {
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec now;
        unsigned long long before = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &now);
        unsigned long long after = __rdtsc();
        if (after - before < 100000) {  // well under 100 us at any plausible rate
            *tsc = before + (after - before) / 2;
            *nanoseconds = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
            return 0;
        }
    }
    return -1;
}

unsigned long long linux_measure_tsc_khz(int milliseconds) {
    unsigned long long tsc0, tsc1;
    long long ns0, ns1;
    if (tsc_clock_pair(&tsc0, &ns0) != 0) return 0;
    struct timespec pause = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    if (tsc_clock_pair(&tsc1, &ns1) != 0 || ns1 <= ns0 || tsc1 <= tsc0) return 0;
    return (unsigned long long)((long double)(tsc1 - tsc0) * 1000000.0L / (long double)(ns1 - ns0));
}
#else
unsigned long long linux_measure_tsc_khz(int milliseconds) {
    (void)milliseconds;
    return 0;
}
#endif

int linux_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int linux_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct linux_open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

int linux_mount_id(int fd, uint64_t *mount_id) {
    struct statx info;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &info) != 0) return -1;
    if (!(info.stx_mask & STATX_MNT_ID)) {
        errno = EOPNOTSUPP;
        return -1;
    }
    *mount_id = info.stx_mnt_id;
    return 0;
}

static struct sockaddr_vm vsock_address(uint32_t cid, uint32_t port) {
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    return address;
}

/// A CLOEXEC vsock stream socket bound to (any context id, `port`); fd, or -1 with errno.
static int vsock_bound_socket(uint32_t port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_vm address = vsock_address(VMADDR_CID_ANY, port);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int linux_vsock_listen(uint32_t port, int backlog) {
    int fd = vsock_bound_socket(port);
    if (fd < 0) return -1;
    if (listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int linux_vsock_accept(int listener, uint32_t *peer_cid, uint32_t *peer_port) {
    struct sockaddr_vm address;
    socklen_t length = sizeof address;
    int fd;
    do {
        fd = accept4(listener, (struct sockaddr *)&address, &length, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    *peer_cid = address.svm_cid;
    *peer_port = address.svm_port;
    return fd;
}

int linux_vsock_connect_privileged(uint32_t cid, uint32_t port) {
    int last_error = EADDRINUSE;
    for (uint32_t local = 1023; local >= 512; local--) {
        int fd = vsock_bound_socket(local);
        if (fd < 0) {
            if (errno == EADDRINUSE) continue;
            return -1;
        }
        struct sockaddr_vm address = vsock_address(cid, port);
        int result;
        do {
            result = connect(fd, (struct sockaddr *)&address, sizeof address);
        } while (result < 0 && errno == EINTR);
        if (result == 0) return fd;
        last_error = errno;
        close(fd);
        if (last_error != EADDRINUSE) {
            errno = last_error;
            return -1;
        }
    }
    errno = last_error;
    return -1;
}

int linux_listen_loopback_in_netns(int netns_fd, int backlog, uint16_t *port_out) {
    int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0) return -1;
    if (setns(netns_fd, CLONE_NEWNET) != 0) {
        int saved = errno;
        close(own);
        errno = saved;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int saved = errno;
    if (fd >= 0) {
        struct sockaddr_in address;
        memset(&address, 0, sizeof(address));
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, backlog) != 0 ||
            getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        } else {
            *port_out = ntohs(address.sin_port);
        }
    }
    // Back to the thread's own namespace; a thread left in the pod's would be a leak.
    if (setns(own, CLONE_NEWNET) != 0) abort();
    close(own);
    errno = saved;
    return fd;
}

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h, whose linux/in.h clashes with netinet/in.h */
#endif

int linux_original_destination_port(int fd) {
    struct sockaddr_in original;
    socklen_t length = sizeof(original);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &original, &length) != 0) return -1;
    return ntohs(original.sin_port);
}

int linux_accept_cloexec(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}
