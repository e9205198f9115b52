import CLinuxSys
import Glibc

/// Ends a local domain's QEMU without holding up other domains' starts.
///
/// libvirt's destroy sends SIGTERM and, when QEMU is still there a moment later, sleeps 200 ms with
/// the domain locked; so does its handling of QEMU's exit, which often sees QEMU still exiting. A
/// lookup of that domain meanwhile (`virDomainLookupByName`, as a destroy starts with) holds libvirt's
/// domain list until the lock is free, and every other domain's start waits for the list. Measured
/// here: a pod start overlapping the previous pod's teardown took 270–300 ms in libvirt instead of
/// 120–140.
///
/// So QEMU goes first (SIGKILL through a pidfd: what libvirt's destroy ends with too), then this
/// waits, on inotify, for libvirt to remove the domain's status file, the last step of its clean-up.
/// Only then does the caller's destroy look the domain up, and finds it gone.
public enum DomainTermination {
    public enum Outcome: Sendable, Equatable {
        /// No QEMU of that domain ran here (no pid file, or another driver's domain): nothing was done.
        case notRunning
        /// QEMU is gone and libvirt has removed the domain.
        case removed
        /// QEMU did not exit, or libvirt did not remove the domain, within the time given.
        case timedOut
    }

    /// Kills the QEMU of domain `name` and waits up to `timeoutMilliseconds` for libvirt to remove
    /// the domain. Only for the local system driver (`uri` `qemu:///system`), whose state files are
    /// read here; for any other URI nothing is done. The signal goes through a pidfd opened while
    /// libvirt's pid file still names that pid, so it never reaches a process that reused the pid.
    public static func kill(domain name: String, uri: String, timeoutMilliseconds: Int32) -> Outcome {
        guard QEMUProcess.isLocalSystemDriver(uri) else { return .notRunning }
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        // Watched before QEMU goes, so that the status file's removal cannot be missed.
        let inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotify >= 0 else { return .notRunning }
        defer { close(inotify) }
        guard inotify_add_watch(inotify, QEMUProcess.stateDirectory, UInt32(IN_DELETE)) >= 0 else { return .notRunning }
        guard let pid = QEMUProcess.pid(ofDomain: name) else { return .notRunning }
        let pidfd = linux_pidfd_open(pid)
        if pidfd >= 0 {
            defer { close(pidfd) }
            guard QEMUProcess.pid(ofDomain: name) == pid else { return .notRunning }  // went meanwhile
            if linux_pidfd_send_signal(pidfd, SIGKILL) == 0, !wait(for: pidfd, until: deadline) { return .timedOut }
        }
        let statusFile = "\(name).xml"
        while access("\(QEMUProcess.stateDirectory)/\(statusFile)", F_OK) == 0 {
            guard wait(for: inotify, until: deadline) else { return .timedOut }
            drain(inotify)
        }
        return .removed
    }

    /// Polls `fd` readable until `deadline`; false when the time ran out.
    private static func wait(for fd: CInt, until deadline: ContinuousClock.Instant) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            let ready = poll(&entry, 1, Int32((left / .milliseconds(1)).rounded(.up)))
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return false }
        }
    }

    /// Reads the queued inotify events (the caller checks the file itself).
    private static func drain(_ inotify: CInt) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ read(inotify, $0.baseAddress, $0.count) }) > 0 {}
    }
}
