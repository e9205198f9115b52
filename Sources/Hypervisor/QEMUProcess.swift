import CLinuxSys
import Glibc
import SwiftKataOS

/// What happened to a domain, as libvirt's lifecycle events report it.
public enum DomainLifecycleEvent: Sendable, Equatable {
    case started
    case stopped(reason: StopReason)
    case other(event: Int32, detail: Int32)

    public enum StopReason: Sendable, Equatable {
        case shutdown, destroyed, crashed, failed, other(Int32)
    }
}

/// The QEMU process of a libvirt domain, seen without libvirt: its pid from libvirt's pid file, and
/// its exit through a pidfd (reported at once, where libvirtd reports a killed QEMU only after its
/// own clean-up).
public enum QEMUProcess {
    /// libvirt's QEMU driver state: `NAME.pid` (QEMU's pid) and `NAME.xml` (the live domain's status).
    static let stateDirectory = "/run/libvirt/qemu"

    /// Whether `uri` names the local system QEMU driver, the one whose state is in `stateDirectory`.
    static func isLocalSystemDriver(_ uri: String) -> Bool { LibvirtURI.withoutQuery(uri) == "qemu:///system" }

    /// QEMU's pid for a running domain of the local QEMU driver, or nil.
    public static func pid(ofDomain name: String) -> pid_t? {
        guard let text = readText("\(stateDirectory)/\(name).pid") else { return nil }
        return pid_t(text.filter(\.isNumber))
    }

    /// Whether the process behind `pidfd` has exited (a pidfd polls readable once it has).
    public static func hasExited(pidfd: CInt) -> Bool {
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    /// What `onExit` could do.
    public enum ExitWatch: Sendable {
        /// `exited` will be called when the process ends.
        case watching
        /// The process was gone already: `exited` is never called.
        case alreadyExited
        /// No thread to be had (resource limits): the exit goes unreported, `exited` is never called.
        case unwatched
    }

    /// Calls `exited` from a helper thread when process `pid` ends (pidfd, so never a reused pid).
    @discardableResult
    public static func onExit(of pid: pid_t, _ exited: @escaping @Sendable () -> Void) -> ExitWatch {
        let pidfd = linux_pidfd_open(pid)
        guard pidfd >= 0 else { return .alreadyExited }
        let started = startDetachedThread {
            var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while poll(&entry, 1, -1) < 0 && errno == EINTR {}
            close(pidfd)
            exited()
        }
        guard started else {
            close(pidfd)
            return .unwatched
        }
        return .watching
    }

    /// QEMU's exit as a lifecycle stream: `.stopped(.crashed)` once it is gone (at once if it already is).
    public static func events(pid: pid_t) -> AsyncStream<DomainLifecycleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DomainLifecycleEvent.self)
        let crashed: @Sendable () -> Void = {
            continuation.yield(.stopped(reason: .crashed))
            continuation.finish()
        }
        if onExit(of: pid, crashed) == .alreadyExited { crashed() }
        return stream
    }
}
