import Glibc
import TTRPC

/// A failure of the agent's own, with the class the host sees as its ttrpc status code.
struct AgentError: Error, CustomStringConvertible, Sendable, TTRPCStatusConvertible {
    enum Code: Sendable { case notFound, alreadyExists, invalid, failedPrecondition, resourceExhausted, internalError }
    var code: Code
    var description: String

    var ttrpcError: TTRPCError {
        switch code {
        case .notFound: TTRPCError(.notFound, description)
        case .alreadyExists: TTRPCError(.alreadyExists, description)
        case .invalid: TTRPCError(.invalidArgument, description)
        case .failedPrecondition: TTRPCError(.failedPrecondition, description)
        case .resourceExhausted: TTRPCError(.resourceExhausted, description)
        case .internalError: TTRPCError(.internal, description)
        }
    }
}

extension AgentError {
    /// A process that could not be created or started, with the class its cause calls for (as
    /// runc's shim reports them): a missing executable or directory is NotFound, one that may not
    /// run is FailedPrecondition, a guest out of memory, processes or descriptors is
    /// ResourceExhausted. Anything else keeps `otherwise`.
    init(spawning what: String, _ error: any Error, otherwise: Code) {
        let cause = (error as? Spawner.SpawnError)?.cause ?? 0
        let code: Code =
            switch cause {
            case ENOENT: .notFound
            case EACCES, EPERM, ENOEXEC, ENOTDIR, ELOOP, ETXTBSY: .failedPrecondition
            case ENOMEM, EAGAIN, ENOSPC, EMFILE, ENFILE, EDQUOT: .resourceExhausted
            default: otherwise
            }
        self.init(code: code, description: "\(what): \(error)")
    }
}
