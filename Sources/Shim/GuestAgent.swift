import AgentAPI
import NIOCore
import SwiftProtobuf
import TTRPC

/// The pod's calls to its guest agent (the generated `AgentCalls`, with their deadlines), failing as
/// `ShimError`s, and with the replies the shim cannot take on trust checked: the guest is untrusted,
/// so a pid outside Linux's range or an endless process list is refused before anything uses it.
struct GuestAgent: Sendable {
    let calls: any Swiftkata_Agent_V1_AgentCalls

    /// Runs one agent call; its failure names `operation` and keeps the agent's status code.
    func call<Result>(
        _ operation: String, _ body: (any Swiftkata_Agent_V1_AgentCalls) async throws -> Result
    ) async throws(ShimError) -> Result {
        do { return try await body(calls) } catch { throw ShimError.agent(operation, error) }
    }

    /// Runs one agent call that replies with a guest pid, and checks that pid.
    func guestPID(_ operation: String, _ body: (any Swiftkata_Agent_V1_AgentCalls) async throws -> UInt32) async throws(ShimError) -> UInt32 {
        try Self.validGuestPID(try await call(operation, body), operation)
    }

    /// Linux's largest pid (PID_MAX_LIMIT). A guest pid outside 1...this is a lie, refused before it
    /// reaches anything that converts it (`Int32(pid)` traps on values past Int32.max).
    static let maxGuestPID: UInt32 = 4_194_304

    /// `pid` when it can be a guest process id; otherwise the call fails as a broken reply.
    static func validGuestPID(_ pid: UInt32, _ operation: String) throws(ShimError) -> UInt32 {
        guard pid >= 1, pid <= maxGuestPID else {
            throw .internalError("\(operation): the guest agent replied with pid \(pid), outside 1...\(maxGuestPID)")
        }
        return pid
    }

    /// Most processes one reply is decoded into: the guest decides how many it lists.
    static let maxListedProcesses = 16384

    /// The processes of container `id`, decoded entry by entry and no further than the bound: never
    /// millions of entries first. An entry with a pid Linux cannot have is the guest's lie, left out.
    func listProcesses(id: String) async throws(ShimError) -> [Swiftkata_Agent_V1_ProcessInfo] {
        try await call("listing processes of container \(id)") { agent in
            let reply = try await agent.listProcesses(.with { $0.containerID = id })
            return try ProtoRepeatedField.firstEntries(of: 1, in: reply, limit: Self.maxListedProcesses).map { entry in
                try Swiftkata_Agent_V1_ProcessInfo(serializedBuffer: entry)
            }.filter { (1...Self.maxGuestPID).contains($0.pid) }
        }
    }
}
