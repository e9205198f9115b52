// Tests for sk_spawn/sk_start (guest-agent/Sources/CContainerSpawn). Runs as root on the host:
// builds a busybox rootfs in a temporary directory and runs containers in it.
//
//   make -C guest-agent/tests-c test
//
// Prints PASS/FAIL/SKIP per case; exits non-zero when a case failed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sk_spawn.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static char workdir[256];
static char rootfs[300];
static int failures;
static int case_failed;
static const char *case_name;

static void check(int ok, const char *fmt, ...) {
    if (ok) return;
    case_failed = 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    [%s] check failed: ", case_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void begin(const char *name) {
    case_name = name;
    case_failed = 0;
}

static void end(void) {
    printf("%s %s\n", case_failed ? "FAIL" : "PASS", case_name);
    fflush(stdout);
    if (case_failed) failures++;
}

static void skip(const char *name, const char *why) {
    printf("SKIP %s (%s)\n", name, why);
    fflush(stdout);
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

// The capabilities this test process holds (a container host may withhold some, e.g. CAP_SYS_RESOURCE).
static uint64_t own_caps;

static uint64_t read_own_permitted(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) die("capget");
    return (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(path);
    close(fd);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (in < 0 || out < 0) die("copy busybox");
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) die("copy busybox");
    }
    close(in);
    close(out);
}

static void path_join(char *out, size_t len, const char *a, const char *b) {
    snprintf(out, len, "%s/%s", a, b);
}

static void setup_rootfs(void) {
    snprintf(workdir, sizeof(workdir), "/tmp/sk-test-XXXXXX");
    if (mkdtemp(workdir) == NULL) die("mkdtemp");
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", workdir);
    const char *dirs[] = {"", "bin", "proc", "dev", "etc", "tmp", "sys", "masked", "data"};
    char p[512];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        path_join(p, sizeof(p), rootfs, dirs[i]);
        if (mkdir(p, 0755) < 0 && errno != EEXIST) die(p);
    }
    path_join(p, sizeof(p), rootfs, "tmp");
    chmod(p, 01777);
    path_join(p, sizeof(p), rootfs, "bin/busybox");
    copy_file("/bin/busybox", p, 0755);
    const char *applets[] = {"sh", "echo", "cat", "ls", "mkdir", "id", "hostname", "sleep", "true", "false", "grep",
                             "tr", "cut", "touch", "wc", "pwd", "test", "readlink", "stat", "env", "head",
                             "tty", "stty"};
    for (size_t i = 0; i < sizeof(applets) / sizeof(applets[0]); i++) {
        char link[512];
        snprintf(link, sizeof(link), "%s/bin/%s", rootfs, applets[i]);
        if (symlink("busybox", link) < 0) die(link);
    }
    // A non-executable file, for the exec permission test.
    path_join(p, sizeof(p), rootfs, "bin/notexec");
    write_file(p, "#!/bin/sh\necho no\n");
    chmod(p, 0644);
    // A directory to be masked.
    path_join(p, sizeof(p), rootfs, "masked/secret");
    write_file(p, "secret\n");
    // The escape attempt: /evil -> /../../etc (relative to the container root this is /etc).
    path_join(p, sizeof(p), rootfs, "evil");
    if (symlink("/../../etc", p) < 0) die("symlink evil");
    // A host directory with a marker file, to be bind-mounted.
    snprintf(p, sizeof(p), "%s/markerdir", workdir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/markerdir/marker", workdir);
    write_file(p, "inside-rootfs\n");
}

static void cleanup_rootfs(void) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", workdir);
}

static sk_mount std_mounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, NULL},
    {"tmpfs", "/dev", "tmpfs", MS_NOSUID, 0, "mode=755,size=65536k"},
};
static const char *const std_env[] = {"PATH=/bin", "HOME=/", NULL};

static sk_spawn_config base_config(const char *const *argv) {
    sk_spawn_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    cfg.join_pidfd = -1;
    cfg.cgroup_fd = -1;
    cfg.rootfs = rootfs;
    cfg.mounts = std_mounts;
    cfg.mount_count = 2;
    cfg.create_default_devices = 1;
    cfg.argv = argv;
    cfg.envp = std_env;
    cfg.cap_bounding = cfg.cap_effective = cfg.cap_permitted = own_caps;
    cfg.umask_value = 022;
    cfg.stdin_fd = cfg.stdout_fd = cfg.stderr_fd = -1;
    cfg.start_fd = -1;
    cfg.console_socket = -1;
    return cfg;
}

static size_t read_all(int fd, char *buf, size_t len) {
    size_t total = 0;
    while (total + 1 < len) {
        ssize_t n = read(fd, buf + total, len - 1 - total);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += (size_t)n;
    }
    buf[total] = '\0';
    return total;
}

typedef struct run_result {
    int spawn_rc;
    int start_rc;
    pid_t pid;
    int wstatus;
    int cause;  // errno after the failing sk_spawn or sk_start
    char out[8192];
    char err[512];
} run_result;

/// Spawns cfg with stdout+stderr into a pipe, starts it (through a start pipe when use_start),
/// collects the output and reaps the process.
static void run(sk_spawn_config *cfg, int use_start, run_result *r) {
    memset(r, 0, sizeof(*r));
    r->pid = -1;
    int out[2], start[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0) die("pipe");
    if (use_start && pipe2(start, O_CLOEXEC) < 0) die("pipe");
    cfg->stdout_fd = cfg->stderr_fd = out[1];
    cfg->start_fd = start[0];
    int status_fd = -1;
    r->spawn_rc = sk_spawn(cfg, &r->pid, &status_fd, r->err, sizeof(r->err));
    r->cause = errno;
    close(out[1]);
    if (start[0] >= 0) close(start[0]);
    if (r->spawn_rc != 0) {
        if (start[1] >= 0) close(start[1]);
        close(out[0]);
        if (r->pid > 0) waitpid(r->pid, &r->wstatus, 0);
        return;
    }
    r->start_rc = sk_start(start[1], status_fd, r->err, sizeof(r->err));
    r->cause = errno;
    read_all(out[0], r->out, sizeof(r->out));
    close(out[0]);
    if (waitpid(r->pid, &r->wstatus, 0) != r->pid) perror("waitpid");
}

static int exited_with(int wstatus, int code) {
    return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == code;
}

static void reap_strays(void) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

// ---------------------------------------------------------------------------------------------

static void test_a_new_container(void) {
    begin("a: new container (pid 1, hostname, uid/gid/groups, no_new_privs, rlimit, umask, oom, cwd, /dev, fds)");
    const char *argv[] = {"sh", "-c",
                          "echo pid=$$; echo host=$(hostname); grep NoNewPrivs /proc/self/status; id; "
                          "echo nofile=$(ulimit -n); echo umask=$(umask); echo oom=$(cat /proc/self/oom_score_adj); "
                          "echo cwd=$(pwd); echo dev=$(ls /dev | tr '\\n' ' '); echo x > /dev/null && echo devnull-ok; "
                          "echo fds=$(ls /proc/self/fd | tr '\\n' ' '); echo ptmx=$(readlink /dev/ptmx)",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    static const uint32_t gids[] = {1001, 1002};
    static const sk_rlimit limits[] = {{RLIMIT_NOFILE, 1000, 1000}};
    cfg.hostname = "sk-test";
    cfg.uid = 1000;
    cfg.gid = 1000;
    cfg.additional_gids = gids;
    cfg.additional_gid_count = 2;
    cfg.cap_effective = cfg.cap_permitted = 0;
    cfg.no_new_privileges = 1;
    cfg.rlimits = limits;
    cfg.rlimit_count = 1;
    cfg.umask_value = 027;
    cfg.oom_score_adj = 500;
    cfg.set_oom_score_adj = 1;
    cfg.cwd = "/tmp/work/dir";
    // An fd without O_CLOEXEC in the caller must not reach the container.
    int leak = open("/etc/hostname", O_RDONLY);
    run_result r;
    run(&cfg, 0, &r);
    if (leak >= 0) close(leak);
    check(r.spawn_rc == 0, "sk_spawn failed: %s", r.err);
    check(r.start_rc == 0, "sk_start failed: %s", r.err);
    check(exited_with(r.wstatus, 0), "exit status 0x%x", r.wstatus);
    check(strstr(r.out, "pid=1\n") != NULL, "pid is not 1");
    check(strstr(r.out, "host=sk-test\n") != NULL, "hostname");
    check(strstr(r.out, "NoNewPrivs:\t1") != NULL, "NoNewPrivs");
    check(strstr(r.out, "uid=1000") != NULL && strstr(r.out, "gid=1000") != NULL, "uid/gid");
    check(strstr(r.out, "groups=1001") != NULL && strstr(r.out, "1002") != NULL, "groups");
    check(strstr(r.out, "nofile=1000\n") != NULL, "rlimit");
    check(strstr(r.out, "umask=0027\n") != NULL, "umask");
    check(strstr(r.out, "oom=500\n") != NULL, "oom_score_adj");
    check(strstr(r.out, "cwd=/tmp/work/dir\n") != NULL, "cwd");
    check(strstr(r.out, "dev=core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero\n") != NULL,
          "default devices");
    check(strstr(r.out, "devnull-ok") != NULL, "/dev/null writable");
    check(strstr(r.out, "fds=0 1 2 3\n") != NULL, "only stdio open in the container");
    check(strstr(r.out, "ptmx=pts/ptmx") != NULL, "ptmx link");
    printf("    output:\n%s", r.out);
    end();
}

static void test_b_start_handshake(void) {
    begin("b: nothing runs before sk_start; closing the start pipe cancels");
    const char *argv[] = {"sh", "-c", "echo started", NULL};
    sk_spawn_config cfg = base_config(argv);
    int out[2], start[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(start, O_CLOEXEC) < 0) die("pipe");
    cfg.stdout_fd = cfg.stderr_fd = out[1];
    cfg.start_fd = start[0];
    pid_t pid = -1;
    int status_fd = -1;
    char err[512];
    int rc = sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err));
    close(out[1]);
    close(start[0]);
    check(rc == 0, "sk_spawn: %s", err);
    if (rc == 0) {
        usleep(300 * 1000);
        struct pollfd pfd = {out[0], POLLIN, 0};
        check(poll(&pfd, 1, 0) == 0, "output before start");
        char path[64], exe[256] = "";
        snprintf(path, sizeof(path), "/proc/%d/exe", pid);
        ssize_t n = readlink(path, exe, sizeof(exe) - 1);
        if (n > 0) exe[n] = '\0';
        check(strstr(exe, "busybox") == NULL, "child already exec'd: %s", exe);
        rc = sk_start(start[1], status_fd, err, sizeof(err));
        check(rc == 0, "sk_start: %s", err);
        char buf[256];
        read_all(out[0], buf, sizeof(buf));
        check(strcmp(buf, "started\n") == 0, "output '%s'", buf);
        int ws;
        waitpid(pid, &ws, 0);
        check(exited_with(ws, 0), "exit status 0x%x", ws);
    }
    close(out[0]);

    // A child waiting for start must not keep other fds of the caller (e.g. another spawn's status
    // pipe, created by another thread just before the clone): they are closed right after clone.
    {
        int other[2], held_start[2];
        if (pipe2(other, O_CLOEXEC) < 0 || pipe2(held_start, O_CLOEXEC) < 0) die("pipe");
        sk_spawn_config held = base_config(argv);
        held.start_fd = held_start[0];
        pid_t held_pid = -1;
        int held_status = -1;
        rc = sk_spawn(&held, &held_pid, &held_status, err, sizeof(err));
        close(held_start[0]);
        check(rc == 0, "sk_spawn (held): %s", err);
        close(other[1]);
        struct pollfd pfd = {other[0], POLLIN, 0};
        int ready = poll(&pfd, 1, 1000);
        char b;
        check(ready == 1 && read(other[0], &b, 1) == 0, "a waiting child kept another fd of the caller open");
        close(other[0]);
        if (rc == 0) {
            rc = sk_start(held_start[1], held_status, err, sizeof(err));
            check(rc == 0, "sk_start (held): %s", err);
            int ws;
            waitpid(held_pid, &ws, 0);
        } else {
            close(held_start[1]);
        }
    }

    // Cancel: close the start pipe's write end without a byte.
    if (pipe2(start, O_CLOEXEC) < 0) die("pipe");
    cfg.stdout_fd = cfg.stderr_fd = -1;
    cfg.start_fd = start[0];
    rc = sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err));
    close(start[0]);
    check(rc == 0, "sk_spawn: %s", err);
    if (rc == 0) {
        close(start[1]);
        rc = sk_start(-1, status_fd, err, sizeof(err));
        check(rc == -1 && strstr(err, "cancel") != NULL, "cancel: rc=%d err='%s'", rc, err);
        int ws;
        waitpid(pid, &ws, 0);
        check(exited_with(ws, 127), "cancelled child exit status 0x%x", ws);
    }
    end();
}

static void test_c_exit_code(void) {
    begin("c: exit code 3 propagates");
    const char *argv[] = {"sh", "-c", "exit 3", NULL};
    sk_spawn_config cfg = base_config(argv);
    run_result r;
    run(&cfg, 1, &r);
    check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
    check(exited_with(r.wstatus, 3), "exit status 0x%x", r.wstatus);
    end();
}

static void test_d_errors(void) {
    begin("d: setup errors come back as messages (missing binary, bad path, not executable, bad mount, exec after start)");
    run_result r;
    {
        const char *argv[] = {"no-such-binary", NULL};
        sk_spawn_config cfg = base_config(argv);
        run(&cfg, 1, &r);
        printf("    missing:     rc=%d '%s'\n", r.spawn_rc, r.err);
        check(r.spawn_rc == -1 && strstr(r.err, "no-such-binary") != NULL && strstr(r.err, "not found") != NULL,
              "missing binary: rc=%d err='%s'", r.spawn_rc, r.err);
        check(r.cause == ENOENT, "missing binary: errno %d, not ENOENT", r.cause);
        check(r.pid > 0 && (exited_with(r.wstatus, 127) || WIFSIGNALED(r.wstatus)), "child reaped: 0x%x",
              r.wstatus);
    }
    {
        const char *argv[] = {"/bin/nope", NULL};
        sk_spawn_config cfg = base_config(argv);
        run(&cfg, 1, &r);
        printf("    absolute:    rc=%d '%s'\n", r.spawn_rc, r.err);
        check(r.spawn_rc == -1 && strstr(r.err, "/bin/nope") && strstr(r.err, "No such file or directory"),
              "absolute: '%s'", r.err);
        check(r.cause == ENOENT, "absolute: errno %d, not ENOENT", r.cause);
    }
    {
        const char *argv[] = {"/bin/notexec", NULL};
        sk_spawn_config cfg = base_config(argv);
        cfg.uid = 1000; // root would pass X_OK for... no x bit at all: still EACCES
        run(&cfg, 1, &r);
        printf("    not exec:    rc=%d '%s'\n", r.spawn_rc, r.err);
        check(r.spawn_rc == -1 && strstr(r.err, "Permission denied"), "not executable: '%s'", r.err);
        check(r.cause == EACCES, "not executable: errno %d, not EACCES", r.cause);
    }
    {
        const char *argv[] = {"true", NULL};
        sk_spawn_config cfg = base_config(argv);
        sk_mount mounts[] = {std_mounts[0], {"x", "/mnt", "nosuchfs", 0, 0, NULL}};
        cfg.mounts = mounts;
        cfg.mount_count = 2;
        run(&cfg, 1, &r);
        printf("    bad mount:   rc=%d '%s'\n", r.spawn_rc, r.err);
        check(r.spawn_rc == -1 && strstr(r.err, "mount x on /mnt: No such device"), "bad mount: '%s'", r.err);
        check(r.cause == ENODEV, "bad mount: errno %d, not ENODEV", r.cause);
    }
    {
        // Passes the lookup (a regular executable file) but execve fails: reported by sk_start.
        char p[512];
        path_join(p, sizeof(p), rootfs, "bin/garbage");
        write_file(p, "\x7f" "ELFgarbage");
        chmod(p, 0755);
        const char *argv[] = {"garbage", NULL};
        sk_spawn_config cfg = base_config(argv);
        run(&cfg, 1, &r);
        printf("    exec error:  spawn=%d start=%d '%s'\n", r.spawn_rc, r.start_rc, r.err);
        check(r.spawn_rc == 0 && r.start_rc == -1 && strstr(r.err, "exec /bin/garbage: Exec format error"),
              "exec failure after start: '%s'", r.err);
        check(r.cause == ENOEXEC, "exec failure: errno %d, not ENOEXEC", r.cause);
        check(exited_with(r.wstatus, 127), "exit status 0x%x", r.wstatus);
        unlink(p);
    }
    end();
}

static void test_e_symlink_escape(void) {
    begin("e: mount destinations cannot leave the rootfs (symlink to /../../etc, ../ in destination)");
    char marker[512], escape_name[64], host_escape[128], inside_escape[600];
    snprintf(marker, sizeof(marker), "%s/markerdir", workdir);
    snprintf(escape_name, sizeof(escape_name), "sk-escape-%d", getpid());
    snprintf(host_escape, sizeof(host_escape), "/tmp/%s", escape_name);
    char dotdot_dest[128];
    snprintf(dotdot_dest, sizeof(dotdot_dest), "/../../../../tmp/%s", escape_name);
    snprintf(inside_escape, sizeof(inside_escape), "%s/tmp/%s", rootfs, escape_name);
    sk_mount mounts[] = {
        std_mounts[0],
        std_mounts[1],
        {marker, "/evil", "bind", MS_BIND, 0, NULL},
        {"tmpfs", dotdot_dest, "tmpfs", 0, 0, "size=1m"},
    };
    char script[512];
    snprintf(script, sizeof(script), "cat /etc/marker; grep -c ' /tmp/%s ' /proc/self/mountinfo", escape_name);
    const char *argv[] = {"sh", "-c", script, NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.mounts = mounts;
    cfg.mount_count = 4;
    run_result r;
    run(&cfg, 1, &r);
    printf("    output: %s", r.out);
    check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
    check(strstr(r.out, "inside-rootfs\n") != NULL, "bind through the symlink did not land on the rootfs's /etc");
    check(strstr(r.out, "\n1\n") != NULL, "tmpfs with ../ destination not mounted at /tmp/%s in the container",
          escape_name);
    check(access("/etc/marker", F_OK) != 0, "host /etc/marker exists!");
    check(access(host_escape, F_OK) != 0, "%s was created on the host!", host_escape);
    check(access(inside_escape, F_OK) == 0, "%s was not created inside the rootfs", inside_escape);
    end();
}

static int read_nspid(pid_t pid, char *out, size_t len) {
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    read_all(fd, buf, sizeof(buf));
    close(fd);
    char *line = strstr(buf, "NSpid:");
    if (line == NULL) return -1;
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    snprintf(out, len, "%s", line);
    return 0;
}

static void test_f_exec(const char *cgroup_dir, int cgroup_fd) {
    begin(cgroup_fd >= 0 ? "i2: exec into a running container, into a cgroup" : "f: exec into a running container (join_pidfd)");
    const char *init_argv[] = {"sleep", "1000", NULL};
    sk_spawn_config init_cfg = base_config(init_argv);
    init_cfg.hostname = "sk-init";
    pid_t init_pid = -1;
    int status_fd = -1;
    char err[512];
    int rc = sk_spawn(&init_cfg, &init_pid, &status_fd, err, sizeof(err));
    check(rc == 0, "spawn init: %s", err);
    if (rc != 0) {
        end();
        return;
    }
    rc = sk_start(-1, status_fd, err, sizeof(err));
    check(rc == 0, "start init: %s", err);
    int pidfd = (int)syscall(SYS_pidfd_open, init_pid, 0);
    check(pidfd >= 0, "pidfd_open: %s", strerror(errno));

    const char *argv[] = {"sh", "-c",
                          "echo pid=$$; echo init=$(tr '\\0' ' ' < /proc/1/cmdline); echo host=$(hostname); "
                          "echo cwd=$(pwd)",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.clone_flags = 0;
    cfg.join_pidfd = pidfd;
    cfg.rootfs = NULL;
    cfg.cwd = "/tmp";
    cfg.uid = 1000;
    cfg.gid = 1000;
    cfg.cgroup_fd = cgroup_fd;
    int out[2], start[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(start, O_CLOEXEC) < 0) die("pipe");
    cfg.stdout_fd = cfg.stderr_fd = out[1];
    cfg.start_fd = start[0];
    pid_t pid = -1;
    rc = sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err));
    close(out[1]);
    close(start[0]);
    check(rc == 0, "sk_spawn exec: %s", err);
    if (rc == 0) {
        char nspid[128] = "";
        char expect[64];
        read_nspid(pid, nspid, sizeof(nspid));
        snprintf(expect, sizeof(expect), "NSpid:\t%d\t", pid);
        printf("    returned pid %d, /proc/%d/status %s\n", pid, pid, nspid);
        check(strncmp(nspid, expect, strlen(expect)) == 0, "pid %d is not the host-visible pid (%s)", pid, nspid);
        if (cgroup_fd >= 0) {
            char path[64], buf[1024], want[300];
            snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            buf[0] = '\0';
            if (fd >= 0) {
                read_all(fd, buf, sizeof(buf));
                close(fd);
            }
            snprintf(want, sizeof(want), "0::/%s\n", strrchr(cgroup_dir, '/') + 1);
            check(strstr(buf, want) != NULL, "exec cgroup: %s", buf);
        }
        rc = sk_start(start[1], status_fd, err, sizeof(err));
        check(rc == 0, "sk_start exec: %s", err);
        char buf[2048];
        read_all(out[0], buf, sizeof(buf));
        printf("    output:\n%s", buf);
        int ws = 0;
        pid_t w = waitpid(pid, &ws, 0);
        check(w == pid, "waitpid(%d) = %d (%s)", pid, w, strerror(errno));
        check(exited_with(ws, 0), "exit status 0x%x", ws);
        check(strstr(buf, "pid=1\n") == NULL && strstr(buf, "pid=") != NULL, "exec got pid 1");
        check(strstr(buf, "init=sleep 1000\n") != NULL, "container's pid 1 is not the init");
        check(strstr(buf, "host=sk-init\n") != NULL, "UTS namespace not joined");
        check(strstr(buf, "cwd=/tmp\n") != NULL, "cwd");
        check(strstr(buf, "pid=2\n") != NULL, "exec is not pid 2 of the container's fresh pid namespace");
        check(strstr(nspid, "\t2") != NULL, "NSpid has no inner pid 2");
    } else {
        close(start[1]);
    }
    close(out[0]);
    if (pidfd >= 0) close(pidfd);
    kill(init_pid, SIGKILL);
    int ws;
    waitpid(init_pid, &ws, 0);
    reap_strays(); // the exec's intermediate
    end();
}

static struct sock_filter deny_mkdir_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
#if defined(__x86_64__)
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
#elif defined(__aarch64__)
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_AARCH64, 1, 0),
#else
#error "add this architecture's AUDIT_ARCH"
#endif
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __NR_mkdir
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mkdir, 2, 0),
#else
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mkdirat, 2, 0),
#endif
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mkdirat, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
};

static void test_g_seccomp(int no_new_privs, uint32_t uid) {
    begin(no_new_privs ? "g: seccomp filter denies mkdir (no_new_privs, root)"
                       : "g2: seccomp filter denies mkdir (no no_new_privs, uid 1000: filter before final capset)");
    const char *argv[] = {"sh", "-c", "mkdir /tmp/x; echo rc=$?; grep -E 'Seccomp:|CapEff' /proc/self/status", NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.seccomp_filter = deny_mkdir_filter;
    cfg.seccomp_filter_len = sizeof(deny_mkdir_filter);
    cfg.no_new_privileges = no_new_privs;
    cfg.uid = uid;
    cfg.gid = uid;
    if (uid != 0) cfg.cap_effective = cfg.cap_permitted = 0;
    run_result r;
    run(&cfg, 1, &r);
    printf("    output:\n%s", r.out);
    check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
    check(strstr(r.out, "Operation not permitted") != NULL, "mkdir was not denied with EPERM");
    check(strstr(r.out, "rc=1") != NULL, "mkdir exit status");
    check(strstr(r.out, "Seccomp:\t2") != NULL, "seccomp mode");
    if (uid != 0) check(strstr(r.out, "CapEff:\t0000000000000000") != NULL, "final capabilities not applied");
    end();
}

static void test_h_capabilities(void) {
    begin("h: empty bounding set; ambient capability for a non-root user");
    run_result r;
    {
        const char *argv[] = {"sh", "-c", "grep -E 'Cap(Bnd|Eff|Prm)' /proc/self/status", NULL};
        sk_spawn_config cfg = base_config(argv);
        cfg.cap_bounding = 0;
        cfg.cap_effective = cfg.cap_permitted = cfg.cap_inheritable = 0;
        run(&cfg, 1, &r);
        printf("    root, bounding 0:\n%s", r.out);
        check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
        check(strstr(r.out, "CapBnd:\t0000000000000000") != NULL, "CapBnd");
        check(strstr(r.out, "CapEff:\t0000000000000000") != NULL, "CapEff");
    }
    {
        const char *argv[] = {"sh", "-c", "grep -E 'Cap(Bnd|Eff|Prm|Inh|Amb)' /proc/self/status; id -u", NULL};
        sk_spawn_config cfg = base_config(argv);
        uint64_t nbs = 1ULL << CAP_NET_BIND_SERVICE, chown_cap = 1ULL << CAP_CHOWN;
        cfg.uid = 1000;
        cfg.gid = 1000;
        cfg.cap_bounding = nbs | chown_cap;
        cfg.cap_effective = cfg.cap_permitted = nbs | chown_cap;
        cfg.cap_inheritable = cfg.cap_ambient = nbs;
        run(&cfg, 1, &r);
        printf("    uid 1000, ambient NET_BIND_SERVICE:\n%s", r.out);
        check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
        check(strstr(r.out, "CapBnd:\t0000000000000401") != NULL, "CapBnd");
        check(strstr(r.out, "CapAmb:\t0000000000000400") != NULL, "CapAmb");
        check(strstr(r.out, "CapEff:\t0000000000000400") != NULL, "CapEff");
        check(strstr(r.out, "\n1000\n") != NULL, "uid");
    }
    end();
}

static void test_i_cgroup(void) {
    const char *name = "i: CLONE_INTO_CGROUP";
    const char *bases[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    const char *base = NULL;
    for (size_t i = 0; i < 2; i++) {
        struct statfs st;
        if (statfs(bases[i], &st) == 0 && (unsigned long)st.f_type == CGROUP2_SUPER_MAGIC) {
            base = bases[i];
            break;
        }
    }
    if (base == NULL) {
        skip(name, "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified");
        return;
    }
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/sk-test-%d", base, getpid());
    if (mkdir(dir, 0755) < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot create %s: %s", dir, strerror(errno));
        skip(name, why);
        return;
    }
    int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    begin(name);
    printf("    cgroup v2 at %s\n", base);
    const char *argv[] = {"cat", "/proc/self/cgroup", NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.clone_flags |= CLONE_NEWCGROUP;
    cfg.cgroup_fd = cgfd;
    int start[2], out[2];
    if (pipe2(start, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) die("pipe");
    cfg.start_fd = start[0];
    cfg.stdout_fd = out[1];
    pid_t pid = -1;
    int status_fd = -1;
    char err[512];
    int rc = sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err));
    close(start[0]);
    close(out[1]);
    check(rc == 0, "sk_spawn: %s", err);
    if (rc == 0) {
        char path[64], buf[1024] = "", want[300];
        snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            read_all(fd, buf, sizeof(buf));
            close(fd);
        }
        snprintf(want, sizeof(want), "0::/sk-test-%d\n", getpid());
        check(strstr(buf, want) != NULL, "child's cgroup: %s", buf);
        rc = sk_start(start[1], status_fd, err, sizeof(err));
        check(rc == 0, "sk_start: %s", err);
        char inner[256];
        read_all(out[0], inner, sizeof(inner));
        const char *v2 = strstr(inner, "0::");
        printf("    host view: %s    container view (CLONE_NEWCGROUP): %s", strstr(buf, "0::") ? strstr(buf, "0::") : buf,
               v2 ? v2 : inner);
        check(v2 != NULL && strncmp(v2, "0::/\n", 5) == 0, "cgroup namespace root is not the target cgroup: %s", inner);
        int ws;
        waitpid(pid, &ws, 0);
        check(exited_with(ws, 0), "exit status 0x%x", ws);
    } else {
        close(start[1]);
    }
    close(out[0]);
    end();
    test_f_exec(dir, cgfd);
    close(cgfd);
    if (rmdir(dir) < 0) fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
}

static void test_j_readonly_and_masks(void) {
    begin("j: read-only rootfs, read-only bind, masked file/dir, read-only path");
    char rodir[512];
    snprintf(rodir, sizeof(rodir), "%s/markerdir", workdir);
    sk_mount mounts[] = {
        std_mounts[0],
        std_mounts[1],
        {rodir, "/data", "bind", MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID, MS_PRIVATE, NULL},
        {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, 0, "mode=1777"},
    };
    const char *masked[] = {"/proc/kcore", "/proc/version", "/masked", "/does/not/exist"};
    const char *ro[] = {"/proc/sys", "/does/not/exist/either"};
    const char *argv[] = {"sh", "-c",
                          "touch /rootfile 2>&1; touch /data/x 2>&1; touch /tmp/ok && echo tmp-writable; "
                          "echo version=$(wc -c < /proc/version); echo masked=$(ls /masked | wc -l); "
                          "echo 1 > /proc/sys/kernel/domainname 2>&1; cat /data/marker; "
                          "grep -E ' /(data|proc/sys) ' /proc/self/mountinfo | cut -d' ' -f5,6",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.mounts = mounts;
    cfg.mount_count = 4;
    cfg.masked_paths = masked;
    cfg.masked_path_count = 4;
    cfg.readonly_paths = ro;
    cfg.readonly_path_count = 2;
    cfg.rootfs_readonly = 1;
    run_result r;
    run(&cfg, 1, &r);
    printf("    output:\n%s", r.out);
    check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
    check(strstr(r.out, "/rootfile: Read-only file system") != NULL, "rootfs not read-only");
    check(strstr(r.out, "/data/x: Read-only file system") != NULL, "bind not read-only");
    check(strstr(r.out, "tmp-writable") != NULL, "tmpfs on /tmp not writable");
    check(strstr(r.out, "version=0\n") != NULL, "/proc/version not masked");
    check(strstr(r.out, "masked=0\n") != NULL, "/masked not masked");
    check(strstr(r.out, "Read-only file system") != NULL && strstr(r.out, "/proc/sys ro,nosuid,nodev,noexec") != NULL,
          "/proc/sys not read-only with its flags kept");
    check(strstr(r.out, "/data ro,nosuid") != NULL, "/data flags");
    check(strstr(r.out, "inside-rootfs") != NULL, "bind content");
    end();
}

static void test_k_terminal(void) {
    begin("k: terminal (setsid + controlling tty)");
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) die("openpt");
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) die("open pts");
    const char *argv[] = {"sh", "-c", "test -t 0 && echo is-tty; echo tty_nr=$(cut -d' ' -f7 /proc/self/stat)", NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.stdin_fd = cfg.stdout_fd = cfg.stderr_fd = slave;
    cfg.terminal = 1;
    cfg.console_socket = 0; // a caller that zeroes the struct: fds 0-2 never mean a console socket
    pid_t pid = -1;
    int status_fd = -1;
    char err[512];
    int rc = sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err));
    close(slave);
    check(rc == 0, "sk_spawn: %s", err);
    if (rc == 0) {
        rc = sk_start(-1, status_fd, err, sizeof(err));
        check(rc == 0, "sk_start: %s", err);
        char buf[1024];
        read_all(master, buf, sizeof(buf)); // ends with EIO once the slave is closed
        printf("    output: %s", buf);
        int ws;
        waitpid(pid, &ws, 0);
        check(exited_with(ws, 0), "exit 0x%x", ws);
        check(strstr(buf, "is-tty") != NULL, "stdin not a tty");
        check(strstr(buf, "tty_nr=0\r") == NULL && strstr(buf, "tty_nr=") != NULL, "no controlling terminal");
    }
    close(master);
    end();
}

// A container /dev like the OCI default: tmpfs, its own devpts instance (ptmx via pts/ptmx).
static sk_mount console_mounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, NULL},
    {"tmpfs", "/dev", "tmpfs", MS_NOSUID, 0, "mode=755,size=65536k"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, 0, "newinstance,ptmxmode=0666,mode=0620"},
};

/// Reads a pty master until EIO (the slave's last holder is gone) or timeout_ms without data.
static size_t read_tty(int master, char *buf, size_t len, int timeout_ms) {
    size_t total = 0;
    while (total + 1 < len) {
        struct pollfd pfd = {master, POLLIN, 0};
        int ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;
        ssize_t n = read(master, buf + total, len - 1 - total);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        total += (size_t)n;
    }
    buf[total] = '\0';
    return total;
}

/// True when some line of text starts with prefix.
static int has_line_starting(const char *text, const char *prefix) {
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, len) == 0) return 1;
        p = strchr(p, '\n');
        if (p != NULL) p++;
    }
    return 0;
}

/// Spawns cfg with a console socket and a start pipe; receives the master, sets the window to
/// 40x100, starts, collects the terminal output and reaps the process. Returns the spawn rc.
static int run_console(sk_spawn_config *cfg, char *out, size_t out_len, int *wstatus, char *err, size_t err_len) {
    int sv[2], start[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(start, O_CLOEXEC) < 0) die("socketpair");
    cfg->terminal = 1;
    cfg->console_socket = sv[0];
    cfg->stdin_fd = cfg->stdout_fd = cfg->stderr_fd = -1;
    cfg->start_fd = start[0];
    out[0] = '\0';
    *wstatus = 0;
    pid_t pid = -1;
    int status_fd = -1;
    int rc = sk_spawn(cfg, &pid, &status_fd, err, err_len);
    close(sv[0]);
    close(start[0]);
    if (rc != 0) {
        close(start[1]);
        close(sv[1]);
        if (pid > 0) waitpid(pid, wstatus, 0);
        return rc;
    }
    int master = -1;
    if (sk_receive_console(sv[1], &master, err, err_len) != 0) {
        check(0, "sk_receive_console: %s", err);
        close(start[1]); // cancels the process
        sk_start(-1, status_fd, err, err_len);
        waitpid(pid, wstatus, 0);
        close(sv[1]);
        return -1;
    }
    close(sv[1]);
    check((fcntl(master, F_GETFD) & FD_CLOEXEC) != 0, "received master is not O_CLOEXEC");
    struct winsize ws = {.ws_row = 40, .ws_col = 100};
    check(ioctl(master, TIOCSWINSZ, &ws) == 0, "TIOCSWINSZ: %s", strerror(errno));
    check(sk_start(start[1], status_fd, err, err_len) == 0, "sk_start: %s", err);
    read_tty(master, out, out_len, 10000);
    close(master);
    if (waitpid(pid, wstatus, 0) != pid) perror("waitpid");
    return 0;
}

static void test_o_console_socket(void) {
    begin("o: console socket: the container's own pty (tty, stty size, owner, controlling tty)");
    const char *argv[] = {"sh", "-c",
                          "tty; stty size; stat -c 'owner=%u:%g mode=%a' $(tty); "
                          "echo tty_nr=$(cut -d' ' -f7 /proc/self/stat); echo fds=$(ls /proc/self/fd | tr '\\n' ' ')",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.mounts = console_mounts;
    cfg.mount_count = 3;
    cfg.uid = 1000;
    cfg.gid = 1000;
    cfg.cap_effective = cfg.cap_permitted = 0;
    char out[4096], err[512];
    int ws;
    int rc = run_console(&cfg, out, sizeof(out), &ws, err, sizeof(err));
    printf("    output:\n%s", out);
    check(rc == 0, "sk_spawn: %s", err);
    check(exited_with(ws, 0), "exit status 0x%x", ws);
    check(has_line_starting(out, "/dev/pts/0\r"), "tty is not /dev/pts/0 of the container's devpts");
    check(has_line_starting(out, "40 100\r"), "window size 40x100 not seen by stty size");
    check(strstr(out, "owner=1000:1000 mode=620") != NULL, "slave owner/mode");
    check(strstr(out, "tty_nr=0\r") == NULL && strstr(out, "tty_nr=") != NULL, "no controlling terminal");
    check(strstr(out, "fds=0 1 2 3\r") != NULL, "an fd other than stdio reached the container");

    // Without a devpts on /dev/pts there is no pty to open: a message, like the other steps.
    {
        const char *true_argv[] = {"true", NULL};
        sk_spawn_config bad = base_config(true_argv);
        rc = run_console(&bad, out, sizeof(out), &ws, err, sizeof(err));
        printf("    no devpts:   rc=%d '%s'\n", rc, err);
        check(rc == -1 && strcmp(err, "console: open /dev/ptmx: No such file or directory") == 0,
              "no devpts: rc=%d err='%s'", rc, err);
        check(exited_with(ws, 127), "exit status 0x%x", ws);
    }
    // sk_receive_console on a socket closed without a message, and on a message without an fd.
    {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
        int master = 123;
        if (write(sv[0], "x", 1) != 1) die("write");
        rc = sk_receive_console(sv[1], &master, err, sizeof(err));
        check(rc == -1 && master == -1 && strstr(err, "without a file descriptor"), "no fd: rc=%d '%s'", rc, err);
        close(sv[0]);
        rc = sk_receive_console(sv[1], &master, err, sizeof(err));
        check(rc == -1 && master == -1 && strstr(err, "closed"), "closed: rc=%d '%s'", rc, err);
        close(sv[1]);
    }
    end();
}

static void test_o2_console_exec(void) {
    begin("o2: console socket for an exec into a running container (its devpts, uid 1000)");
    const char *init_argv[] = {"sleep", "1000", NULL};
    sk_spawn_config init_cfg = base_config(init_argv);
    init_cfg.mounts = console_mounts;
    init_cfg.mount_count = 3;
    pid_t init_pid = -1;
    int status_fd = -1;
    char err[512];
    int rc = sk_spawn(&init_cfg, &init_pid, &status_fd, err, sizeof(err));
    check(rc == 0, "spawn init: %s", err);
    if (rc != 0) {
        end();
        return;
    }
    rc = sk_start(-1, status_fd, err, sizeof(err));
    check(rc == 0, "start init: %s", err);
    int pidfd = (int)syscall(SYS_pidfd_open, init_pid, 0);
    check(pidfd >= 0, "pidfd_open: %s", strerror(errno));

    const char *argv[] = {"sh", "-c",
                          "tty; stty size; stat -c 'owner=%u:%g mode=%a' $(tty); "
                          "echo tty_nr=$(cut -d' ' -f7 /proc/self/stat); echo pid=$$",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.clone_flags = 0;
    cfg.join_pidfd = pidfd;
    cfg.rootfs = NULL;
    cfg.uid = 1000;
    cfg.gid = 1000;
    cfg.cap_effective = cfg.cap_permitted = 0;
    char out[4096];
    int ws;
    rc = run_console(&cfg, out, sizeof(out), &ws, err, sizeof(err));
    printf("    output:\n%s", out);
    check(rc == 0, "sk_spawn exec: %s", err);
    check(exited_with(ws, 0), "exit status 0x%x", ws);
    check(has_line_starting(out, "/dev/pts/0\r"), "tty is not /dev/pts/0 of the container's devpts");
    check(has_line_starting(out, "40 100\r"), "window size");
    check(strstr(out, "owner=1000:1000 mode=620") != NULL, "slave owner/mode");
    check(strstr(out, "tty_nr=0\r") == NULL && strstr(out, "tty_nr=") != NULL, "no controlling terminal");
    check(strstr(out, "pid=2\r") != NULL, "not in the container's pid namespace");
    if (pidfd >= 0) close(pidfd);
    kill(init_pid, SIGKILL);
    waitpid(init_pid, &ws, 0);
    reap_strays(); // the exec's intermediate
    end();
}

static const char *escape_helper; // static binary built from escape.c, or NULL

static void test_n_escape(const char *method) {
    char name[160];
    snprintf(name, sizeof(name), "n: escape by %s reaches none of the caller's mounts",
             strcmp(method, "setns") == 0 ? "umount / + setns(own mnt ns)" : "chroot + ..");
    if (escape_helper == NULL || access(escape_helper, X_OK) != 0) {
        skip(name, "escape helper not built (pass its path as the first argument)");
        return;
    }
    begin(name);
    char dest[512];
    path_join(dest, sizeof(dest), rootfs, "bin/escape");
    copy_file(escape_helper, dest, 0755);
    const char *argv[] = {"/bin/escape", method, NULL};
    sk_spawn_config cfg = base_config(argv);
    run_result r;
    run(&cfg, 1, &r);
    printf("    output:\n%s", r.out);
    check(r.spawn_rc == 0 && r.start_rc == 0, "spawn/start: %s", r.err);
    check(exited_with(r.wstatus, 0), "exit status 0x%x", r.wstatus);
    // Either the escape stays in the container's root, or what it reaches holds none of the
    // caller's mounts (pivot_root detached the old root; the MS_MOVE fallback detaches them).
    if (strstr(r.out, "left-container-root:yes") != NULL) {
        check(strstr(r.out, "outer-proc:hidden") != NULL, "the caller's /proc is reachable");
        check(strstr(r.out, "outer-sys:hidden") != NULL, "the caller's /sys is reachable");
        check(strstr(r.out, "outer-dev:hidden") != NULL, "the caller's /dev is reachable");
    } else {
        check(strstr(r.out, "left-container-root:no") != NULL, "escape helper output");
    }
    unlink(dest);
    end();
}

// Concurrent spawns from several threads (the agent spawns from any NIO thread).
#define THREADS 4
#define SPAWNS_PER_THREAD 8
static int thread_failures[THREADS];

static void *spawn_thread(void *arg) {
    int index = (int)(intptr_t)arg;
    for (int i = 0; i < SPAWNS_PER_THREAD; i++) {
        char script[64];
        snprintf(script, sizeof(script), "echo t%d-%d pid=$$", index, i);
        const char *argv[] = {"sh", "-c", script, NULL};
        sk_spawn_config cfg = base_config(argv);
        run_result *r = malloc(sizeof(*r));
        run(&cfg, i % 2, r);
        char want[64];
        snprintf(want, sizeof(want), "t%d-%d pid=1\n", index, i);
        if (r->spawn_rc != 0 || r->start_rc != 0 || strcmp(r->out, want) != 0 || !exited_with(r->wstatus, 0)) {
            fprintf(stderr, "    thread %d spawn %d: rc=%d/%d err='%s' out='%s' status=0x%x\n", index, i, r->spawn_rc,
                    r->start_rc, r->err, r->out, r->wstatus);
            thread_failures[index]++;
        }
        free(r);
    }
    return NULL;
}

static void test_l_concurrent(void) {
    begin("l: concurrent spawns from 4 threads (32 containers)");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, spawn_thread, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int total = 0;
    for (int i = 0; i < THREADS; i++) total += thread_failures[i];
    check(total == 0, "%d spawn(s) failed", total);
    printf("    %d containers in %.2f s\n", THREADS * SPAWNS_PER_THREAD,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    end();
}

/// Spawns and starts "sleep 1000" with its own namespaces and hostname; returns its pid or -1.
static pid_t spawn_sleeper(const char *hostname) {
    const char *argv[] = {"sleep", "1000", NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.hostname = hostname;
    pid_t pid = -1;
    int status_fd = -1;
    char err[512];
    if (sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) != 0 || sk_start(-1, status_fd, err, sizeof(err)) != 0) {
        check(0, "spawn sleeper: %s", err);
        if (pid > 0) waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void ns_link(pid_t pid, const char *type, char *out, size_t len) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, type);
    ssize_t n = readlink(path, out, len - 1);
    out[n > 0 ? n : 0] = '\0';
}

static void test_p_join_namespaces(int with_pid) {
    begin(with_pid ? "p2: new container joins another's uts, ipc and pid namespaces (second clone)"
                   : "p: new container joins another's uts and ipc namespaces (join_namespaces)");
    pid_t owner = spawn_sleeper("sk-shared");
    if (owner < 0) {
        end();
        return;
    }
    const char *types[] = {"uts", "ipc", "pid"};
    int nstypes[] = {CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID};
    sk_namespace_join joins[3];
    size_t count = with_pid ? 3 : 2;
    for (size_t i = 0; i < count; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", owner, types[i]);
        joins[i].fd = open(path, O_RDONLY | O_CLOEXEC);
        joins[i].nstype = nstypes[i];
        check(joins[i].fd >= 0, "open %s: %s", path, strerror(errno));
    }
    const char *argv[] = {"sh", "-c",
                          "echo pid=$$; echo host=$(hostname); echo uts=$(readlink /proc/self/ns/uts); "
                          "echo ipc=$(readlink /proc/self/ns/ipc); echo pidns=$(readlink /proc/self/ns/pid); "
                          "echo init=$(tr '\\0' ' ' < /proc/1/cmdline)",
                          NULL};
    sk_spawn_config cfg = base_config(argv);
    cfg.clone_flags = CLONE_NEWNS | (with_pid ? 0 : CLONE_NEWPID);
    cfg.join_namespaces = joins;
    cfg.join_namespace_count = count;
    run_result r;
    run(&cfg, 1, &r);
    for (size_t i = 0; i < count; i++) close(joins[i].fd);
    check(r.spawn_rc == 0, "sk_spawn failed: %s", r.err);
    check(r.start_rc == 0, "sk_start failed: %s", r.err);
    check(exited_with(r.wstatus, 0), "exit status 0x%x", r.wstatus);
    char want[160], link[128];
    check(strstr(r.out, "host=sk-shared\n") != NULL, "hostname of the joined uts namespace");
    ns_link(owner, "uts", link, sizeof(link));
    snprintf(want, sizeof(want), "uts=%s\n", link);
    check(strstr(r.out, want) != NULL, "uts namespace is not the owner's %s", link);
    ns_link(owner, "ipc", link, sizeof(link));
    snprintf(want, sizeof(want), "ipc=%s\n", link);
    check(strstr(r.out, want) != NULL, "ipc namespace is not the owner's %s", link);
    ns_link(owner, "pid", link, sizeof(link));
    snprintf(want, sizeof(want), "pidns=%s\n", link);
    if (with_pid) {
        check(strstr(r.out, want) != NULL, "pid namespace is not the owner's %s", link);
        check(strstr(r.out, "init=sleep 1000\n") != NULL, "pid 1 is not the owner's init");
        check(strstr(r.out, "pid=1\n") == NULL, "got pid 1 in a joined pid namespace");
    } else {
        check(strstr(r.out, want) == NULL, "pid namespace shared without a join");
        check(strstr(r.out, "pid=1\n") != NULL, "pid is not 1 in its own pid namespace");
    }
    printf("    output:\n%s", r.out);
    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);
    reap_strays(); // the intermediate of the pid join
    end();
}

static void test_p3_join_refusals(void) {
    begin("p3: refused joins (type also in clone_flags, twice, exec, unknown type, not a namespace fd)");
    const char *argv[] = {"true", NULL};
    pid_t pid;
    int status_fd;
    char err[256];
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sk_namespace_join uts = {devnull, CLONE_NEWUTS};
    sk_spawn_config cfg = base_config(argv);
    cfg.join_namespaces = &uts;
    cfg.join_namespace_count = 1;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "both joined and in clone_flags"), "in clone_flags: %s", err);
    sk_namespace_join twice[2] = {{devnull, CLONE_NEWIPC}, {devnull, CLONE_NEWIPC}};
    cfg.clone_flags = CLONE_NEWNS;
    cfg.join_namespaces = twice;
    cfg.join_namespace_count = 2;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "twice"), "twice: %s", err);
    sk_namespace_join net = {devnull, CLONE_NEWNET};
    cfg.join_namespaces = &net;
    cfg.join_namespace_count = 1;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "only CLONE_NEWUTS"), "net: %s", err);
    cfg.join_namespaces = &uts;
    cfg.join_pidfd = devnull;
    cfg.clone_flags = 0;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "not for an exec"), "exec: %s", err);
    // /dev/null is no namespace: setns fails in the child, with the type named.
    cfg = base_config(argv);
    cfg.clone_flags = CLONE_NEWNS | CLONE_NEWPID;
    cfg.join_namespaces = &uts;
    cfg.join_namespace_count = 1;
    run_result r;
    run(&cfg, 0, &r);
    check(r.spawn_rc == -1 && strstr(r.err, "setns into the shared uts namespace"), "setns error: %s", r.err);
    close(devnull);
    reap_strays();
    end();
}

static void test_m_refusals(void) {
    begin("m: refused configurations (no CLONE_NEWNS, bad seccomp size, empty argv)");
    const char *argv[] = {"true", NULL};
    pid_t pid;
    int status_fd;
    char err[256];
    sk_spawn_config cfg = base_config(argv);
    cfg.clone_flags = CLONE_NEWPID;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "CLONE_NEWNS"), "no NEWNS: %s", err);
    cfg = base_config(argv);
    cfg.seccomp_filter = deny_mkdir_filter;
    cfg.seccomp_filter_len = 5;
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "seccomp"), "seccomp size: %s", err);
    const char *empty[] = {NULL};
    cfg = base_config(empty);
    check(sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) == -1 && strstr(err, "argv"), "argv: %s", err);
    end();
}


/// Drops CAP_SYS_PTRACE from this process's effective and permitted sets (and its bounding set).
static int drop_ptrace_capability(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    data[CAP_SYS_PTRACE / 32].effective &= ~(1u << (CAP_SYS_PTRACE % 32));
    data[CAP_SYS_PTRACE / 32].permitted &= ~(1u << (CAP_SYS_PTRACE % 32));
    prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0);
    return (int)syscall(SYS_capset, &header, data);
}

/// errno of PTRACE_SEIZE on pid (0: attached, then detached again).
static int try_ptrace(pid_t pid) {
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return errno;
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}

static void test_q_not_dumpable_until_exec(void) {
    begin("q: until exec, the child cannot be ptraced without CAP_SYS_PTRACE (not dumpable)");
    int results[2];
    if (pipe2(results, O_CLOEXEC) < 0) die("pipe");
    pid_t helper = fork();
    if (helper == 0) {
        // The helper spawns the container (its own child, as Yama's ptrace_scope 1 would want), a
        // root process with no capabilities, then gives up CAP_SYS_PTRACE and attaches: while the
        // child waits for start, before and after exec, and to a plain child of its own (control).
        const char *argv[] = {"sleep", "30", NULL};
        sk_spawn_config cfg = base_config(argv);
        cfg.cap_bounding = cfg.cap_effective = cfg.cap_permitted = 0;
        int start[2];
        if (pipe2(start, O_CLOEXEC) < 0) _exit(10);
        cfg.start_fd = start[0];
        pid_t pid = -1;
        int status_fd = -1;
        char err[512];
        int outcome[3] = {-1, -1, -1};
        if (sk_spawn(&cfg, &pid, &status_fd, err, sizeof(err)) != 0) _exit(11);
        close(start[0]);
        int ready[2];
        if (pipe2(ready, O_CLOEXEC) < 0) _exit(15);
        pid_t plain = fork();
        if (plain == 0) {
            // As the container: root with no capabilities, but dumpable.
            struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
            struct __user_cap_data_struct none[2];
            memset(none, 0, sizeof(none));
            syscall(SYS_capset, &header, none);
            close(ready[1]);
            pause();
            _exit(0);
        }
        close(ready[1]);
        char byte;
        while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {
        }
        close(ready[0]);
        if (drop_ptrace_capability() != 0) _exit(12);
        outcome[0] = try_ptrace(pid);
        outcome[1] = try_ptrace(plain);
        if (sk_start(start[1], status_fd, err, sizeof(err)) != 0) _exit(13);
        char path[64], exe[256] = "";
        snprintf(path, sizeof(path), "/proc/%d/exe", pid);
        for (int i = 0; i < 200 && strstr(exe, "busybox") == NULL; i++) {
            ssize_t n = readlink(path, exe, sizeof(exe) - 1);
            exe[n > 0 ? n : 0] = '\0';
            usleep(10 * 1000);
        }
        outcome[2] = try_ptrace(pid);
        kill(pid, SIGKILL);
        kill(plain, SIGKILL);
        waitpid(pid, NULL, 0);
        waitpid(plain, NULL, 0);
        if (write(results[1], outcome, sizeof(outcome)) != (ssize_t)sizeof(outcome)) _exit(14);
        _exit(0);
    }
    close(results[1]);
    int outcome[3] = {-1, -1, -1};
    ssize_t got = read(results[0], outcome, sizeof(outcome));
    close(results[0]);
    int ws = 0;
    waitpid(helper, &ws, 0);
    check(got == (ssize_t)sizeof(outcome) && exited_with(ws, 0), "helper failed (status 0x%x)", ws);
    check(outcome[0] == EPERM, "attaching to the child waiting for start: errno %d, not EPERM", outcome[0]);
    check(outcome[1] == 0, "control: attaching to a plain child failed with errno %d", outcome[1]);
    check(outcome[2] == 0, "after exec the container process should be dumpable again: errno %d", outcome[2]);
    end();
}

int main(int argc, char **argv) {
    escape_helper = argc > 1 ? argv[1] : NULL;
    if (geteuid() != 0) {
        fprintf(stderr, "test_spawn must run as root\n");
        return 2;
    }
#ifdef SK_TEST_FORCE_MOVE_ROOT
    printf("== built with SK_TEST_FORCE_MOVE_ROOT: pivot_root replaced by the MS_MOVE + chroot fallback\n");
#endif
    own_caps = read_own_permitted();
    setup_rootfs();
    printf("rootfs: %s\n", rootfs);
    test_a_new_container();
    test_b_start_handshake();
    test_c_exit_code();
    test_d_errors();
    test_e_symlink_escape();
    test_f_exec(NULL, -1);
    test_g_seccomp(1, 0);
    test_g_seccomp(0, 1000);
    test_h_capabilities();
    test_i_cgroup();
    test_j_readonly_and_masks();
    test_k_terminal();
    test_o_console_socket();
    test_o2_console_exec();
    test_l_concurrent();
    test_m_refusals();
    test_p_join_namespaces(0);
    test_p_join_namespaces(1);
    test_p3_join_refusals();
    test_q_not_dumpable_until_exec();
    test_n_escape("chroot");
    test_n_escape("setns");
    reap_strays();
    cleanup_rootfs();
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
}
