// Linux calls that Swift's Glibc module does not expose (GNU extensions and raw syscalls), shared by
// the host (shim, helpers, swiftkata-check) and the guest agent. Every function returns what the
// underlying call returns, with errno set on failure.
#ifndef LINUX_SYS_H
#define LINUX_SYS_H

#include <stdint.h>
#include <sys/types.h>

/// pipe2(fds, O_CLOEXEC); returns 0 or -1 with errno.
int linux_pipe_cloexec(int fds[2]);

/// Opens a pty pair: master (O_RDWR|O_NOCTTY|O_CLOEXEC) and its slave (same flags).
/// Returns 0, or -1 with errno.
int linux_open_pty(int *master, int *slave);

/// pidfd_open(pid, 0); returns the fd or -1 with errno.
int linux_pidfd_open(pid_t pid);

/// pidfd_send_signal(pidfd, sig, NULL, 0); returns 0 or -1 with errno.
int linux_pidfd_send_signal(int pidfd, int sig);

/// The host's TSC rate in kHz, measured against CLOCK_MONOTONIC_RAW over `milliseconds`; 0 where
/// there is no TSC (not x86_64) or the measurement was disturbed.
unsigned long long linux_measure_tsc_khz(int milliseconds);

/// memfd_create(name, MFD_CLOEXEC); returns the fd or -1 with errno.
int linux_memfd(const char *name);

/// openat2(dirfd, path, {flags, mode, resolve}); returns the fd or -1 with errno (ENOSYS before 5.6).
int linux_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/// The id of the mount `fd` is on (statx STATX_MNT_ID, Linux 5.8+); returns 0, or -1 with errno
/// (EOPNOTSUPP where the kernel does not report it).
int linux_mount_id(int fd, uint64_t *mount_id);

/// open_tree(dirfd, path, flags) (Linux 5.2+): with OPEN_TREE_CLONE a detached copy of the mount tree
/// at path. Returns the fd or -1 with errno.
int linux_open_tree(int dirfd, const char *path, unsigned int flags);

/// mount_setattr(dirfd, path, flags, {attr_set, attr_clr, propagation 0}) (Linux 5.12+).
int linux_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr);
/// mount_setattr(2) changing only the propagation type (MS_SLAVE, MS_PRIVATE, …).
int linux_mount_set_propagation(int dirfd, const char *path, unsigned int flags, uint64_t propagation);

/// move_mount(from_dirfd, from_path, to_dirfd, to_path, flags) (Linux 5.2+).
int linux_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags);

/// A listening AF_VSOCK stream socket on `port` for any context id (CLOEXEC); fd or -1 with errno.
int linux_vsock_listen(uint32_t port, int backlog);

/// accept4 on a vsock listener (CLOEXEC); stores the peer's context id and port. fd or -1 with errno.
int linux_vsock_accept(int listener, uint32_t *peer_cid, uint32_t *peer_port);

/// Connects to `cid`:`port` from a local port below 1024 (which only a process with
/// CAP_NET_BIND_SERVICE may bind), trying 1023 downwards past ports in use. fd or -1 with errno.
int linux_vsock_connect_privileged(uint32_t cid, uint32_t port);

/// A TCP listener on 127.0.0.1 (a free port) inside the network namespace `netns_fd`: the calling
/// thread enters that namespace for the socket call only and returns to its own. Stores the port;
/// returns the listening fd (CLOEXEC) or -1 with errno.
int linux_listen_loopback_in_netns(int netns_fd, int backlog, uint16_t *port_out);

/// accept4 with CLOEXEC (glibc hides accept4 behind _GNU_SOURCE); fd or -1 with errno.
int linux_accept_cloexec(int listener);

/// The destination port a connection was addressed to before an iptables REDIRECT (SO_ORIGINAL_DST,
/// IPv4); -1 with errno.
int linux_original_destination_port(int fd);

/// Linux constants glibc hides behind _GNU_SOURCE or that live in linux/ headers.
extern const int linux_O_PATH;
extern const int linux_AT_EMPTY_PATH;
extern const uint64_t linux_RESOLVE_NO_SYMLINKS;
extern const uint64_t linux_RESOLVE_NO_XDEV;
extern const uint64_t linux_RESOLVE_BENEATH;
extern const uint64_t linux_RESOLVE_NO_MAGICLINKS;
extern const unsigned int linux_OPEN_TREE_CLONE;
extern const unsigned int linux_OPEN_TREE_CLOEXEC;
extern const unsigned int linux_AT_RECURSIVE;
extern const unsigned int linux_MOVE_MOUNT_F_EMPTY_PATH;
extern const unsigned int linux_MOVE_MOUNT_T_EMPTY_PATH;
extern const uint64_t linux_MOUNT_ATTR_RDONLY;
extern const uint64_t linux_MOUNT_ATTR_NOSUID;
extern const uint64_t linux_MOUNT_ATTR_NODEV;
extern const uint64_t linux_MOUNT_ATTR_NOEXEC;

#endif
