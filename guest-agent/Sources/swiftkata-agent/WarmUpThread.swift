import AgentRuntime
import Glibc
import Logging
import SwiftKataOS

/// Does once, ahead, on a thread of its own at SCHED_IDLE (so only with vCPU time nothing else
/// wants: the agent waiting for the host's next call), what every pod's first calls would otherwise
/// wait for: `lo` up (CreateSandbox) and `SpecWarmUp` (the first CreateContainer).
enum WarmUpThread {
    static func start(logger: Logger) {
        startDetachedThread {
            var parameters = sched_param()
            pthread_setschedparam(pthread_self(), schedIdle, &parameters)
            do { try GuestNetwork.setLoopbackUp() } catch { logger.warning("setting lo up ahead failed", metadata: ["error": "\(error)"]) }
            do { try SpecWarmUp.run() } catch { logger.warning("spec warm-up failed", metadata: ["error": "\(error)"]) }
        }
    }

    /// SCHED_IDLE (linux/sched.h); glibc declares it only under _GNU_SOURCE.
    private static let schedIdle: CInt = 5
}
