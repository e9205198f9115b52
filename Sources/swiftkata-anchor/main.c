// swiftkata-anchor: a host process that stands for one container of a pod whose processes run in a
// VM. Its pid is the container's task pid, so the /proc/<pid>/ns/... paths containerd builds from
// task pids (a pod's containers joining the sandbox, `kubectl debug --target`) name the container
// they mean; the shim maps them back. It does nothing, and dies with the shim that started it.
//
// Usage: swiftkata-anchor <the shim's pid>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    pid_t shim = (pid_t)atol(argv[1]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return 1;
    // The shim may have died between the spawn and the prctl: then nothing would ever kill us.
    if (getppid() != shim) return 1;
    // Hold nothing of the shim's: an inherited socket or pipe would stay open as long as we live.
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
        for (int fd = 3; fd < 1024; fd++) close(fd);
    }
    for (;;) pause();
}
