#define _GNU_SOURCE
#include "guest_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int guest_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int guest_open_pty(int *master, int *slave) {
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

int guest_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int guest_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

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
