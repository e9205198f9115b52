// Root file system setup for a new container, run in the child (new mount namespace) before exec.
//
// Every path inside the container is resolved with openat2(RESOLVE_IN_ROOT) relative to the
// container's root, so neither a symlink in the image nor a "../" in a destination can lead outside
// of it; mounts then go onto /proc/self/fd/N of the O_PATH descriptor that was resolved, so nothing
// can swap the path between the check and the mount. All of it is done before the pivot, while the
// caller's /proc and /dev are still reachable; the result is the same as doing the masked and
// read-only paths after the pivot, because every path is resolved inside the new root.
#include "sk_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define SK_MOUNT_ATTR_RDONLY 0x00000001ULL

// struct mount_attr from <linux/mount.h>, which cannot be included together with <sys/mount.h> on
// glibc 2.36.
struct sk_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

#define SK_PROPAGATION_FLAGS (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE)

/// openat2(rootfd, path, O_PATH | O_CLOEXEC | extra, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
/// returns the fd or -errno. Retries on EAGAIN (a rename or mount raced with the resolution).
static int sk_open_in_root(int rootfd, const char *path, int extra_flags) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(O_PATH | O_CLOEXEC | extra_flags);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0; attempt < 32; attempt++) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        if (fd >= 0) return (int)fd;
        if (errno != EAGAIN && errno != EINTR) return -errno;
    }
    return -EAGAIN;
}

static int sk_reopen_in_root(const sk_child *c, int rootfd, const char *path) {
    int fd = sk_open_in_root(rootfd, path, 0);
    if (fd < 0) sk_child_fail(c, -fd, "open ", path, " (in rootfs)", NULL);
    return fd;
}

/// mkdir -p inside the root (the last component is created as an empty file when last_is_file);
/// returns an O_PATH fd of the final path. Existing paths are used whatever their type.
static int sk_mkpath_in_root(const sk_child *c, int rootfd, const char *dest, int last_is_file) {
    int fd = sk_open_in_root(rootfd, dest, 0);
    if (fd >= 0) return fd;
    if (fd != -ENOENT) sk_child_fail(c, -fd, "open ", dest, " (in rootfs)", NULL);

    char path[4096];
    size_t len = strlen(dest);
    if (len >= sizeof(path)) sk_child_fail(c, ENAMETOOLONG, "mkdir ", dest, NULL);
    memcpy(path, dest, len + 1);

    int parent = -1; // -1: the root itself
    size_t i = 0;
    for (;;) {
        while (path[i] == '/') i++;
        if (path[i] == '\0') break;
        size_t start = i;
        while (path[i] != '\0' && path[i] != '/') i++;
        size_t end = i;
        size_t rest = end;
        while (path[rest] == '/') rest++;
        int is_last = path[rest] == '\0';

        char saved = path[end];
        path[end] = '\0';
        int cur = sk_open_in_root(rootfd, path, 0);
        if (cur == -ENOENT) {
            int dirfd = parent >= 0 ? parent : rootfd;
            const char *name = path + start;
            if (is_last && last_is_file) {
                int f = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);
                if (f >= 0) {
                    close(f);
                } else if (errno != EEXIST) {
                    sk_child_fail(c, errno, "create ", path, " (in rootfs)", NULL);
                }
            } else if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST) {
                sk_child_fail(c, errno, "mkdir ", path, " (in rootfs)", NULL);
            }
            cur = sk_open_in_root(rootfd, path, 0);
        }
        if (cur < 0) sk_child_fail(c, -cur, "open ", path, " (in rootfs)", NULL);
        path[end] = saved;
        if (parent >= 0) close(parent);
        parent = cur;
    }
    if (parent < 0) parent = sk_reopen_in_root(c, rootfd, "/");
    return parent;
}

/// MS_* flags of the mount at fd that a bind remount has to keep.
static unsigned long sk_mount_flags_to_keep(int fd) {
    struct statfs st;
    if (fstatfs(fd, &st) < 0) return 0;
    unsigned long flags = 0;
    if (st.f_flags & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flags & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flags & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flags & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

static int sk_is_bind(const sk_mount *m) {
    return m->type == NULL || strcmp(m->type, "bind") == 0 || (m->flags & MS_BIND) != 0;
}

static void sk_apply_mount(const sk_child *c, int rootfd, const sk_mount *m) {
    const char *dest = m->destination;
    if (dest == NULL || dest[0] == '\0') sk_child_fail(c, EINVAL, "mount: empty destination", NULL);
    int bind = sk_is_bind(m);
    int file = 0;
    if (bind) {
        struct stat st;
        if (m->source == NULL) sk_child_fail(c, EINVAL, "bind mount on ", dest, ": no source", NULL);
        if (stat(m->source, &st) < 0) sk_child_fail(c, errno, "bind mount source ", m->source, NULL);
        file = !S_ISDIR(st.st_mode);
    }
    int fd = sk_mkpath_in_root(c, rootfd, dest, file);
    char target[32];
    sk_fd_path(target, fd);
    unsigned long flags = m->flags & ~(unsigned long)(SK_PROPAGATION_FLAGS | MS_REMOUNT);

    if (bind) {
        if (mount(m->source, target, NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
            sk_child_fail(c, errno, "mount ", m->source, " on ", dest, NULL);
        unsigned long extra = flags & ~(unsigned long)(MS_BIND | MS_REC);
        if (extra != 0) {
            // The first mount went under the fd's path; the remount must address the new mount.
            close(fd);
            fd = sk_reopen_in_root(c, rootfd, dest);
            sk_fd_path(target, fd);
            if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | extra, NULL) < 0)
                sk_child_fail(c, errno, "remount ", dest, " (bind, read-only/nosuid/nodev/noexec)", NULL);
            if ((flags & MS_REC) && (extra & MS_RDONLY)) {
                // MS_REMOUNT only affects the top mount; make submounts of an rbind read-only too.
                struct sk_mount_attr attr;
                memset(&attr, 0, sizeof(attr));
                attr.attr_set = SK_MOUNT_ATTR_RDONLY;
                if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0 &&
                    errno != ENOSYS)
                    sk_child_fail(c, errno, "mount_setattr ", dest, " (recursive read-only)", NULL);
            }
        }
    } else {
        const char *source = m->source != NULL ? m->source : m->type;
        if (mount(source, target, m->type, flags, m->data) < 0)
            sk_child_fail(c, errno, "mount ", source, " on ", dest, NULL);
    }
    if (m->propagation != 0) {
        close(fd);
        fd = sk_reopen_in_root(c, rootfd, dest);
        sk_fd_path(target, fd);
        if (mount(NULL, target, NULL, m->propagation, NULL) < 0)
            sk_child_fail(c, errno, "set propagation of ", dest, NULL);
    }
    close(fd);
}

/// True when the configuration mounts a file system (not a bind) on /dev.
static int sk_has_dev_mount(const sk_spawn_config *cfg) {
    for (size_t i = 0; i < cfg->mount_count; i++) {
        const sk_mount *m = &cfg->mounts[i];
        const char *d = m->destination;
        if (d == NULL || sk_is_bind(m)) continue;
        while (*d == '/') d++;
        if (strncmp(d, "dev", 3) != 0) continue;
        d += 3;
        while (*d == '/') d++;
        if (*d == '\0') return 1;
    }
    return 0;
}

/// Binds the caller's /dev/<path> over a new file at the container's /dev/<path> (parents made,
/// never following a link), when the caller's node has the type and numbers the spec names.
static void sk_bind_spec_device(const sk_child *c, int devfd, const sk_device *device) {
    sk_msg source;
    sk_msg_init(&source);
    if (device->source != NULL) {
        sk_msg_add(&source, device->source);
    } else {
        sk_msg_add(&source, "/dev/");
        sk_msg_add(&source, device->path);
    }
    struct stat st;
    if (stat(source.buf, &st) < 0) return;
    int wanted_type = device->character ? S_IFCHR : S_IFBLK;
    if ((st.st_mode & S_IFMT) != (mode_t)wanted_type || major(st.st_rdev) != device->major || minor(st.st_rdev) != device->minor) return;

    char path[256];
    snprintf(path, sizeof path, "%s", device->path);
    int dir = dup(devfd);
    if (dir < 0) sk_child_fail(c, errno, "dup /dev", NULL);
    char *name = path;
    for (char *slash; (slash = strchr(name, '/')) != NULL; name = slash + 1) {
        *slash = '\0';
        if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST) sk_child_fail(c, errno, "mkdir /dev/", path, NULL);
        int next = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) sk_child_fail(c, errno, "open /dev/", path, NULL);
        close(dir);
        dir = next;
    }
    int f = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0666);
    if (f >= 0) {
        close(f);
    } else if (errno != EEXIST) {
        sk_child_fail(c, errno, "create ", source.buf, " (in rootfs)", NULL);
    }
    int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) sk_child_fail(c, errno, "open ", source.buf, " (in rootfs)", NULL);
    char target[32];
    sk_fd_path(target, fd);
    if (mount(source.buf, target, NULL, MS_BIND, NULL) < 0) sk_child_fail(c, errno, "mount ", source.buf, " (device)", NULL);
    close(fd);
    close(dir);
}

static void sk_create_default_devices(const sk_child *c, int rootfd) {
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"ptmx", "pts/ptmx"},         {"fd", "/proc/self/fd"},         {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}, {"core", "/proc/kcore"},
    };
    int devfd = sk_open_in_root(rootfd, "/dev", O_DIRECTORY);
    if (devfd < 0) sk_child_fail(c, -devfd, "open /dev (in rootfs)", NULL);

    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        sk_msg source;
        sk_msg_init(&source);
        sk_msg_add(&source, "/dev/");
        sk_msg_add(&source, nodes[i]);
        struct stat st;
        if (stat(source.buf, &st) < 0) {
            if (errno == ENOENT) continue; // the caller's /dev lacks it: leave it out
            sk_child_fail(c, errno, "stat ", source.buf, NULL);
        }
        int f = openat(devfd, nodes[i], O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0666);
        if (f >= 0) {
            close(f);
        } else if (errno != EEXIST) {
            sk_child_fail(c, errno, "create /dev/", nodes[i], " (in rootfs)", NULL);
        }
        // A single component under an already resolved directory, without following links.
        int fd = openat(devfd, nodes[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) sk_child_fail(c, errno, "open /dev/", nodes[i], " (in rootfs)", NULL);
        char target[32];
        sk_fd_path(target, fd);
        if (mount(source.buf, target, NULL, MS_BIND, NULL) < 0)
            sk_child_fail(c, errno, "mount ", source.buf, " on /dev/", nodes[i], NULL);
        close(fd);
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        if (symlinkat(links[i][1], devfd, links[i][0]) < 0 && errno != EEXIST)
            sk_child_fail(c, errno, "symlink /dev/", links[i][0], " -> ", links[i][1], NULL);
    }
    for (size_t i = 0; i < c->cfg->device_count; i++) sk_bind_spec_device(c, devfd, &c->cfg->devices[i]);
    if (mkdirat(devfd, "pts", 0755) < 0 && errno != EEXIST) sk_child_fail(c, errno, "mkdir /dev/pts", NULL);
    if (mkdirat(devfd, "shm", 01777) == 0) {
        if (fchmodat(devfd, "shm", 01777, 0) < 0) sk_child_fail(c, errno, "chmod /dev/shm", NULL);
    } else if (errno != EEXIST) {
        sk_child_fail(c, errno, "mkdir /dev/shm", NULL);
    }
    close(devfd);
}

static void sk_mask_path(const sk_child *c, int rootfd, const char *path) {
    int fd = sk_open_in_root(rootfd, path, 0);
    if (fd == -ENOENT) return;
    if (fd < 0) sk_child_fail(c, -fd, "open masked path ", path, NULL);
    struct stat st;
    if (fstat(fd, &st) < 0) sk_child_fail(c, errno, "stat masked path ", path, NULL);
    char target[32];
    sk_fd_path(target, fd);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555") < 0)
            sk_child_fail(c, errno, "mask ", path, " (read-only tmpfs)", NULL);
    } else if (mount("/dev/null", target, NULL, MS_BIND, NULL) < 0) {
        sk_child_fail(c, errno, "mask ", path, " (bind /dev/null)", NULL);
    }
    close(fd);
}

static void sk_readonly_path(const sk_child *c, int rootfd, const char *path) {
    int fd = sk_open_in_root(rootfd, path, 0);
    if (fd == -ENOENT) return;
    if (fd < 0) sk_child_fail(c, -fd, "open read-only path ", path, NULL);
    char target[32];
    sk_fd_path(target, fd);
    if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        sk_child_fail(c, errno, "bind read-only path ", path, NULL);
    close(fd);
    fd = sk_reopen_in_root(c, rootfd, path);
    sk_fd_path(target, fd);
    unsigned long keep = sk_mount_flags_to_keep(fd);
    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep, NULL) < 0)
        sk_child_fail(c, errno, "remount read-only ", path, NULL);
    close(fd);
}

/// After the rootfs was moved onto / (no pivot_root), the caller's mounts are still attached under
/// it in this namespace; a process that escapes the chroot (CAP_SYS_CHROOT) could reach them.
/// Detach every mount on a top-level directory of the old root (with everything below it). Our
/// root directory is still the old root's, and lookups from it do not cross the rootfs mounted on
/// top of it, so "/name" here names the caller's mounts. Best effort: failures are ignored.
static void sk_detach_old_root_mounts(void) {
    int dirfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return;
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dirfd, buf, sizeof(buf));
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct sk_dirent64 {
                uint64_t d_ino;
                int64_t d_off;
                unsigned short d_reclen;
                unsigned char d_type;
                char d_name[];
            } *d = (struct sk_dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) continue;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
            char path[300];
            size_t len = strlen(d->d_name);
            if (len + 2 > sizeof(path)) continue;
            path[0] = '/';
            memcpy(path + 1, d->d_name, len + 1);
            for (int i = 0; i < 64 && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++) {
                // stacked mounts: detach until the directory is a plain one
            }
        }
    }
    close(dirfd);
}

void sk_setup_rootfs(sk_child *c) {
    const sk_spawn_config *cfg = c->cfg;

    // (1) Nothing done here may propagate back to the caller's mount namespace.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) sk_child_fail(c, errno, "make / rprivate", NULL);
    // (2) The root must be a mount point for pivot_root, and a fd of that mount is our anchor.
    if (mount(cfg->rootfs, cfg->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        sk_child_fail(c, errno, "bind mount rootfs ", cfg->rootfs, NULL);
    int rootfd = open(cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) sk_child_fail(c, errno, "open rootfs ", cfg->rootfs, NULL);

    // (3) Mounts, in order.
    for (size_t i = 0; i < cfg->mount_count; i++) sk_apply_mount(c, rootfd, &cfg->mounts[i]);
    // (4) Default devices, only on a file system mounted on /dev by this configuration.
    if (cfg->create_default_devices && sk_has_dev_mount(cfg)) sk_create_default_devices(c, rootfd);
    // The working directory is created like runc does, while the root is still writable.
    if (cfg->cwd != NULL && cfg->cwd[0] != '\0') close(sk_mkpath_in_root(c, rootfd, cfg->cwd, 0));
    // (6) Masked paths, (7) read-only paths.
    for (size_t i = 0; i < cfg->masked_path_count; i++) sk_mask_path(c, rootfd, cfg->masked_paths[i]);
    for (size_t i = 0; i < cfg->readonly_path_count; i++) sk_readonly_path(c, rootfd, cfg->readonly_paths[i]);
    // (8) Read-only root.
    if (cfg->rootfs_readonly) {
        char target[32];
        sk_fd_path(target, rootfd);
        unsigned long keep = sk_mount_flags_to_keep(rootfd);
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
            sk_child_fail(c, errno, "remount rootfs read-only", NULL);
    }

    // (5) pivot_root(".", "."): the old root ends up mounted on top of the new one, and is detached.
    if (fchdir(rootfd) < 0) sk_child_fail(c, errno, "chdir to rootfs ", cfg->rootfs, NULL);
#ifdef SK_TEST_FORCE_MOVE_ROOT
    errno = EINVAL;
    long pivoted = -1;
#else
    long pivoted = syscall(SYS_pivot_root, ".", ".");
#endif
    if (pivoted == 0) {
        if (umount2(".", MNT_DETACH) < 0) sk_child_fail(c, errno, "detach old root", NULL);
    } else if (errno == EINVAL) {
        // The caller's root is the namespace's root mount (an initramfs): pivot_root cannot move
        // it. Do what switch_root and runc's no-pivot mode do: move the rootfs onto / and chroot.
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) sk_child_fail(c, errno, "move rootfs onto /", NULL);
        sk_detach_old_root_mounts();
        if (chroot(".") < 0) sk_child_fail(c, errno, "chroot into rootfs", NULL);
    } else {
        sk_child_fail(c, errno, "pivot_root ", cfg->rootfs, NULL);
    }
    if (chdir("/") < 0) sk_child_fail(c, errno, "chdir /", NULL);
    close(rootfd);
}
