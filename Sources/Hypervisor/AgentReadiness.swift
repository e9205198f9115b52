import AgentAPI
import TTRPC

/// Waits for a freshly booted guest's agent: connects to the channel's unix socket once it exists,
/// then calls Health until the first answer ("agent ready").
public enum AgentReadiness {
    /// Why the agent was not reached in time.
    public struct NotReady: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// - Parameter isAlive: checked between attempts; a VM that died ends the wait at once.
    public static func waitForHealth(
        socketPath: String, deadline: ContinuousClock.Instant, isAlive: @Sendable () -> Bool = { true }
    ) async -> Result<Swiftkata_Agent_V1_HealthResponse, NotReady> {
        var client: TTRPCClient?
        defer { if let client { Task { await client.close() } } }
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            guard isAlive() else { return .failure(NotReady(description: "the VM stopped before its agent answered")) }
            guard let connected = client else {
                client = try? await TTRPCClient.connect(unixSocketPath: socketPath)
                // QEMU creates the socket as it starts; until then there is nothing to wait on but time.
                if client == nil { try? await Task.sleep(for: .milliseconds(5)) }
                continue
            }
            // Requests written before the agent opened its port wait in the socket; a call that timed
            // out leaves a late reply the client drops, so retrying on one connection is safe.
            let remaining = deadline - ContinuousClock.now
            do {
                return .success(try await Swiftkata_Agent_V1_AgentClient(connected).health(.init(), timeout: min(remaining, .seconds(2))))
            } catch {
                lastError = error
            }
        }
        return .failure(NotReady(description: client == nil
            ? "no agent socket at \(socketPath)"
            : "no agent answer (\(lastError.map { "\($0)" } ?? "timed out"))"))
    }
}
