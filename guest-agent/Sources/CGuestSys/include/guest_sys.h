// Guest-only Linux calls of the agent (inotify, virtio-serial ports, switch_root, rtnetlink); what host
// and guest share is in CLinuxSys.
#ifndef GUEST_SYS_H
#define GUEST_SYS_H

#include <sys/types.h>

#include "guest_net.h" // the guest's network configuration (rtnetlink)

/// inotify_init1(IN_CLOEXEC); returns the fd or -1 with errno.
int guest_inotify_init(void);

/// inotify_add_watch(fd, path, IN_MODIFY); returns the watch descriptor or -1 with errno.
int guest_inotify_watch_modify(int fd, const char *path);

/// Blocks until events arrive and stores up to `capacity` watch descriptors that fired.
/// Returns how many, or -1 with errno.
int guest_inotify_read_watches(int fd, int *watches, int capacity);

/// Waits until the host end of a virtio-serial port (`fd`, an open /dev/vportNpM) is connected, for at
/// most `timeout_ms` (-1: no limit). While no host is connected the port polls as HUP at once, so plain
/// poll() cannot wait; the driver wakes the port's wait queue when the host connects, which an
/// edge-triggered epoll registration sees. Returns 1 when connected, 0 on timeout, or -errno.
int guest_port_wait_host(int fd, int timeout_ms);

/// guest_port_relay's results (negative: -errno).
enum { GUEST_RELAY_HOST_GONE = 1, GUEST_RELAY_AGENT_CLOSED = 2, GUEST_RELAY_NEW_HOST = 3 };
/// Carries one host session's requests: bytes from the virtio-serial `port` go, frame by frame, to
/// `requests_out` (a pipe the agent's connection reads), after the `carry_length` bytes in `carry`
/// that the previous session handed on. Returns GUEST_RELAY_HOST_GONE once the port, after a hang-up,
/// has nothing more to read, GUEST_RELAY_NEW_HOST at a request whose stream id does not follow the session's last
/// (a next host's first), GUEST_RELAY_AGENT_CLOSED when the connection closed the pipe's other end.
/// What belongs to the next session is left in `carry` (`carry_capacity` >= 64 KiB + 10). Blocks.
int guest_port_relay(int port, int requests_out, unsigned char *carry, size_t carry_capacity, size_t *carry_length);

/// When "/" is the initramfs (where pivot_root is refused), copies its files into a fresh tmpfs,
/// deletes them from the initramfs to free the memory, moves the tmpfs onto "/" and chroots into it.
/// Returns 1 when it switched, 0 when "/" was not an initramfs, -1 with a message in `error`.
/// Call as PID 1 before any other mount; then re-exec so the program runs from the new root.
int guest_switch_root_to_tmpfs(char *error, size_t error_len);

#endif
