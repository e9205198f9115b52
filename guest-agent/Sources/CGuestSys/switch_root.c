#define _GNU_SOURCE
#include "guest_sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define RAMFS_MAGIC_VALUE 0x858458f6
#define TMPFS_MAGIC_VALUE 0x01021994
#define NEW_ROOT "/.swiftkata-root"

static int fail(char *error, size_t len, const char *step, const char *path) {
    snprintf(error, len, "%s %s: %s", step, path, strerror(errno));
    return -1;
}

/// Copies the tree at `from` (a directory fd) into `to` (a directory fd), then removes the source
/// entries. Only what an initramfs holds: directories, regular files, symlinks, device nodes.
static int move_tree(int from, int to, const char *path, char *error, size_t len) {
    DIR *dir = fdopendir(dup(from));
    if (!dir) return fail(error, len, "opendir", path);
    struct dirent *entry;
    int result = 0;
    while (result == 0 && (entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, NEW_ROOT + 1)) continue;
        char child[PATH_MAX];
        snprintf(child, sizeof child, "%s/%s", path, name);
        struct stat st;
        if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) != 0) { result = fail(error, len, "stat", child); break; }
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(to, name, st.st_mode & 07777) != 0 && errno != EEXIST) { result = fail(error, len, "mkdir", child); break; }
            int sub_from = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int sub_to = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub_from < 0 || sub_to < 0) { result = fail(error, len, "open", child); }
            else { result = move_tree(sub_from, sub_to, child, error, len); }
            if (sub_from >= 0) close(sub_from);
            if (sub_to >= 0) close(sub_to);
            if (result == 0 && unlinkat(from, name, AT_REMOVEDIR) != 0) result = fail(error, len, "rmdir", child);
        } else if (S_ISREG(st.st_mode)) {
            int in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            int out = openat(to, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
            if (in < 0 || out < 0) { result = fail(error, len, "open", child); }
            for (off_t done = 0; result == 0 && done < st.st_size;) {
                ssize_t n = sendfile(out, in, NULL, (size_t)(st.st_size - done));
                if (n <= 0) { result = fail(error, len, "copy", child); break; }
                done += n;
            }
            if (in >= 0) close(in);
            if (out >= 0) close(out);
            if (result == 0 && unlinkat(from, name, 0) != 0) result = fail(error, len, "unlink", child);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(from, name, target, sizeof target - 1);
            if (n < 0) { result = fail(error, len, "readlink", child); break; }
            target[n] = 0;
            if (symlinkat(target, to, name) != 0 && errno != EEXIST) { result = fail(error, len, "symlink", child); break; }
            if (unlinkat(from, name, 0) != 0) result = fail(error, len, "unlink", child);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
            if (mknodat(to, name, st.st_mode, st.st_rdev) != 0 && errno != EEXIST) { result = fail(error, len, "mknod", child); break; }
            if (unlinkat(from, name, 0) != 0) result = fail(error, len, "unlink", child);
        }
        if (result == 0) fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    }
    closedir(dir);
    return result;
}

int guest_switch_root_to_tmpfs(char *error, size_t error_len) {
    struct statfs fs;
    if (statfs("/", &fs) != 0) return fail(error, error_len, "statfs", "/");
    if (fs.f_type != RAMFS_MAGIC_VALUE && fs.f_type != TMPFS_MAGIC_VALUE) return 0;
    // An initramfs root is not a mount of its own that can be moved away; a tmpfs mounted on a
    // directory of it is, and pivot_root works below such a root.
    if (mkdir(NEW_ROOT, 0755) != 0 && errno != EEXIST)
        return fail(error, error_len, "mkdir", NEW_ROOT);
    if (mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID, "mode=0755") != 0) return fail(error, error_len, "mount tmpfs on", NEW_ROOT);
    int from = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int to = open(NEW_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (from < 0 || to < 0) return fail(error, error_len, "open", "/");
    int result = move_tree(from, to, "", error, error_len);
    close(from);
    close(to);
    if (result != 0) return -1;
    if (chdir(NEW_ROOT) != 0) return fail(error, error_len, "chdir", NEW_ROOT);
    if (mount(NEW_ROOT, "/", NULL, MS_MOVE, NULL) != 0) return fail(error, error_len, "move mount", NEW_ROOT);
    if (chroot(".") != 0) return fail(error, error_len, "chroot", NEW_ROOT);
    if (chdir("/") != 0) return fail(error, error_len, "chdir", "/");
    return 1;
}
