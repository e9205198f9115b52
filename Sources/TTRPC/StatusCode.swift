/// The gRPC status codes ttrpc carries in `google.rpc.Status.code`.
///
/// A struct rather than an enum: a peer may send a code this version does not know.
public struct TTRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let ok = Self(rawValue: 0)
    public static let canceled = Self(rawValue: 1)
    public static let unknown = Self(rawValue: 2)
    public static let invalidArgument = Self(rawValue: 3)
    public static let deadlineExceeded = Self(rawValue: 4)
    public static let notFound = Self(rawValue: 5)
    public static let alreadyExists = Self(rawValue: 6)
    public static let permissionDenied = Self(rawValue: 7)
    public static let resourceExhausted = Self(rawValue: 8)
    public static let failedPrecondition = Self(rawValue: 9)
    public static let aborted = Self(rawValue: 10)
    public static let outOfRange = Self(rawValue: 11)
    public static let unimplemented = Self(rawValue: 12)
    public static let `internal` = Self(rawValue: 13)
    public static let unavailable = Self(rawValue: 14)
    public static let dataLoss = Self(rawValue: 15)
    public static let unauthenticated = Self(rawValue: 16)

    private static let names = [
        "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
        "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
        "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
    ]

    public var description: String {
        rawValue >= 0 && Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : "Code(\(rawValue))"
    }
}

/// An error that travels as a ttrpc status: a code and a message.
///
/// containerd keeps the meaning of InvalidArgument, AlreadyExists, NotFound, Unavailable,
/// FailedPrecondition, Unimplemented, Canceled and DeadlineExceeded; it reads any other code as
/// "unknown". Write messages as `"<detail>: not found"` and so on.
public struct TTRPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: TTRPCStatusCode
    public var message: String

    public init(_ code: TTRPCStatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ttrpc status \(code): \(message)" }

    /// The error a client reports for every pending call when its connection goes away.
    public static let closed = TTRPCError(.unavailable, "ttrpc: closed")
}

/// Errors that know which ttrpc status they should travel as.
public protocol TTRPCStatusConvertible: Error {
    var ttrpcError: TTRPCError { get }
}

extension TTRPCError {
    /// Maps any error a handler throws to the status sent on the wire.
    public init(mapping error: any Error) {
        switch error {
        case let error as TTRPCError:
            self = error
        case let error as any TTRPCStatusConvertible:
            self = error.ttrpcError
        case is CancellationError:
            self = TTRPCError(.canceled, "context canceled")
        default:
            self = TTRPCError(.unknown, String(describing: error))
        }
    }
}
