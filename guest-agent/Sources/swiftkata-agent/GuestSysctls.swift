import AgentRuntime
import Glibc
import TTRPC

/// Writes the pod's validated sysctls under /proc/sys (the VM's network namespace is the pod's).
enum GuestSysctls {
    static func write(_ sysctls: [PodSysctl]) throws(TTRPCError) {
        for sysctl in sysctls {
            let fd = open(sysctl.path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else {
                let err = errno
                throw TTRPCError(
                    err == ENOENT ? .invalidArgument : .failedPrecondition,
                    "sysctl \(sysctl.key): \(err == ENOENT ? "no such kernel parameter in the guest" : String(cString: strerror(err)))")
            }
            defer { close(fd) }
            let bytes = Array(sysctl.value.utf8)
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else {
                let err = written < 0 ? errno : EIO
                throw TTRPCError(
                    err == EINVAL ? .invalidArgument : .failedPrecondition,
                    "sysctl \(sysctl.key) = \"\(sysctl.value)\": \(String(cString: strerror(err)))")
            }
        }
    }
}
