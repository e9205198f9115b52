#define _GNU_SOURCE
#include "guest_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int guest_inotify_init(void) {
    return inotify_init1(IN_CLOEXEC);
}

int guest_inotify_watch_modify(int fd, const char *path) {
    return inotify_add_watch(fd, path, IN_MODIFY);
}

int guest_inotify_read_watches(int fd, int *watches, int capacity) {
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t length;
    do {
        length = read(fd, buffer, sizeof buffer);
    } while (length < 0 && errno == EINTR);
    if (length < 0) return -1;
    int count = 0;
    for (char *p = buffer; p < buffer + length && count < capacity;) {
        const struct inotify_event *event = (const struct inotify_event *)p;
        watches[count++] = event->wd;
        p += sizeof(struct inotify_event) + event->len;
    }
    return count;
}

static long long monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

// drivers/char/virtio_console.c: port_fops_poll reports HUP (and IN) while !host_connected, and the
// driver wakes port->waitqueue when the host opens or closes its end and when data arrives. An
// edge-triggered registration gets one event per wakeup; registering before the first check means a
// connect between the check and epoll_wait still leaves an event queued. EPOLLOUT is in the mask because
// a connected port with no data pending polls as OUT only: without it, the wakeup of a connect that sends
// nothing yet would be dropped (epoll reports an edge only when the mask matches).
int guest_port_wait_host(int fd, int timeout_ms) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) return -errno;
    struct epoll_event registration = {.events = EPOLLIN | EPOLLOUT | EPOLLET};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &registration) != 0) {
        int saved = errno;
        close(epfd);
        return -saved;
    }
    long long deadline = timeout_ms < 0 ? 0 : monotonic_ms() + timeout_ms;
    int result;
    for (;;) {
        struct pollfd check = {.fd = fd, .events = POLLIN};
        int ready = poll(&check, 1, 0);
        if (ready < 0 && errno != EINTR) {
            result = -errno;
            break;
        }
        if (ready >= 0 && !(check.revents & POLLHUP)) {
            result = 1;
            break;
        }
        int remaining = -1;
        if (timeout_ms >= 0) {
            long long left = deadline - monotonic_ms();
            if (left <= 0) {
                result = 0;
                break;
            }
            remaining = left > INT_MAX ? INT_MAX : (int)left;
        }
        // The first call returns at once (the readiness at registration); later ones on a wakeup.
        struct epoll_event event;
        if (epoll_wait(epfd, &event, 1, remaining) < 0 && errno != EINTR) {
            result = -errno;
            break;
        }
    }
    close(epfd);
    return result;
}
