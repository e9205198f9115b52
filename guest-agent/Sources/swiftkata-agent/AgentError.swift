import TTRPC

/// A failure of the agent's own, with the class the host sees as its ttrpc status code.
struct AgentError: Error, CustomStringConvertible, Sendable, TTRPCStatusConvertible {
    enum Code: Sendable { case notFound, alreadyExists, invalid, failedPrecondition, internalError }
    var code: Code
    var description: String

    var ttrpcError: TTRPCError {
        switch code {
        case .notFound: TTRPCError(.notFound, description)
        case .alreadyExists: TTRPCError(.alreadyExists, description)
        case .invalid: TTRPCError(.invalidArgument, description)
        case .failedPrecondition: TTRPCError(.failedPrecondition, description)
        case .internalError: TTRPCError(.internal, description)
        }
    }
}
