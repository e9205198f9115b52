import SwiftKataOS
import TTRPC

/// A task-service failure, carrying the ttrpc status containerd's `errdefs` understands. Messages end
/// in the class name containerd strips (": not found" and so on).
enum ShimError: Error, TTRPCStatusConvertible, CustomStringConvertible, Equatable {
    case notFound(String)
    case alreadyExists(String)
    case invalidArgument(String)
    case failedPrecondition(String)
    case unimplemented(String)
    case unavailable(String)
    case deadlineExceeded(String)
    case resourceExhausted(String)
    case internalError(String)

    var ttrpcError: TTRPCError {
        switch self {
        case .notFound(let detail): TTRPCError(.notFound, "\(detail): not found")
        case .alreadyExists(let detail): TTRPCError(.alreadyExists, "\(detail): already exists")
        case .invalidArgument(let detail): TTRPCError(.invalidArgument, "\(detail): invalid argument")
        case .failedPrecondition(let detail): TTRPCError(.failedPrecondition, "\(detail): failed precondition")
        case .unimplemented(let detail): TTRPCError(.unimplemented, "\(detail): not implemented")
        case .unavailable(let detail): TTRPCError(.unavailable, "\(detail): unavailable")
        case .deadlineExceeded(let detail): TTRPCError(.deadlineExceeded, "\(detail): context deadline exceeded")
        case .resourceExhausted(let detail): TTRPCError(.resourceExhausted, "\(detail): resource exhausted")
        case .internalError(let detail): TTRPCError(.unknown, detail)
        }
    }

    /// A system call's failure, with the code its errno calls for (as runc's shim maps them): a
    /// missing file is NotFound, a full disk or memory ResourceExhausted, a bad name InvalidArgument.
    init(_ what: String, _ error: SystemError) {
        let detail = "\(what): \(error)"
        switch error.errno {
        case .noSuchFileOrDirectory: self = .notFound(detail)
        case .fileExists: self = .alreadyExists(detail)
        case .invalidArgument, .fileNameTooLong: self = .invalidArgument(detail)
        case .noMemory, .noSpace, .diskQuotaExceeded, .tooManyOpenFiles, .tooManyOpenFilesInSystem, .fileTooLarge,
            .resourceTemporarilyUnavailable:
            self = .resourceExhausted(detail)
        case .tooManySymbolicLinkLevels, .notDirectory, .resourceBusy: self = .failedPrecondition(detail)
        default: self = .internalError(detail)
        }
    }

    /// Runs `body`, turning a `SystemError` into the matching `ShimError` for `what`.
    static func system<Result>(_ what: @autoclosure () -> String, _ body: () throws -> Result) throws(ShimError) -> Result {
        do { return try body() } catch let error as SystemError { throw ShimError(what(), error) } catch {
            throw .internalError("\(what()): \(error)")
        }
    }

    var description: String { ttrpcError.message }

    /// The same failure, with `detail` added to its message.
    func appending(_ detail: String) -> ShimError {
        switch self {
        case .notFound(let text): .notFound("\(text); \(detail)")
        case .alreadyExists(let text): .alreadyExists("\(text); \(detail)")
        case .invalidArgument(let text): .invalidArgument("\(text); \(detail)")
        case .failedPrecondition(let text): .failedPrecondition("\(text); \(detail)")
        case .unimplemented(let text): .unimplemented("\(text); \(detail)")
        case .unavailable(let text): .unavailable("\(text); \(detail)")
        case .deadlineExceeded(let text): .deadlineExceeded("\(text); \(detail)")
        case .resourceExhausted(let text): .resourceExhausted("\(text); \(detail)")
        case .internalError(let text): .internalError("\(text); \(detail)")
        }
    }

    /// Maps an agent call's failure: a ttrpc status from the guest keeps its code (its text is the
    /// guest's, bounded by the frame limit), a lost connection means the VM is gone.
    static func agent(_ operation: String, _ error: any Error) -> ShimError {
        guard let status = error as? TTRPCError else { return .internalError("\(operation): \(error)") }
        let detail = "\(operation): \(String(status.message.prefix(1024)))"
        switch status.code {
        case .notFound: return .notFound(detail)
        case .alreadyExists: return .alreadyExists(detail)
        case .invalidArgument: return .invalidArgument(detail)
        case .failedPrecondition: return .failedPrecondition(detail)
        case .unimplemented: return .unimplemented(detail)
        case .resourceExhausted: return .resourceExhausted(detail)
        case .deadlineExceeded: return .deadlineExceeded("\(operation): the guest agent did not answer in time")
        case .unavailable: return .unavailable("\(operation): the guest agent is unreachable (\(status.message.prefix(200)))")
        default: return .internalError(detail)
        }
    }
}
