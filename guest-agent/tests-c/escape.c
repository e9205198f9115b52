// Static helper run inside a test container (as root with all capabilities) by test_spawn's case
// "n": tries to get out of the container's root and reports what it reaches.
//   escape chroot   the classic chroot escape (CAP_SYS_CHROOT)
//   escape setns    umount2("/", MNT_DETACH), then setns into its own mount namespace, which sets
//                   the root to the namespace's root mount (CAP_SYS_ADMIN)
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(void) {
    printf("reached-root:");
    DIR *d = opendir("/");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) printf(" %s", e->d_name);
    printf("\n");
    // Still in the container's root (the escape failed) or somewhere else?
    printf("left-container-root:%s\n", access("/bin/escape", F_OK) == 0 ? "no" : "yes");
    printf("outer-proc:%s\n", access("/proc/self/status", F_OK) == 0 ? "visible" : "hidden");
    printf("outer-sys:%s\n", access("/sys/kernel", F_OK) == 0 ? "visible" : "hidden");
    printf("outer-dev:%s\n", access("/dev/tty", F_OK) == 0 ? "visible" : "hidden");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "setns") == 0) {
        int ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (ns < 0) {
            perror("open /proc/self/ns/mnt");
            return 1;
        }
        if (umount2("/", MNT_DETACH) != 0) perror("umount2 /");
        if (setns(ns, CLONE_NEWNS) != 0) {
            perror("setns");
            return 1;
        }
        report();
        return 0;
    }
    mkdir("/.escape", 0755);
    if (chroot("/.escape") != 0) {
        perror("chroot /.escape");
        return 1;
    }
    // The working directory stayed outside the new root: walk up as far as the kernel lets us.
    for (int i = 0; i < 64; i++) {
        if (chdir("..") != 0) break;
    }
    if (chroot(".") != 0) {
        perror("chroot .");
        return 1;
    }
    report();
    return 0;
}
