import AgentAPI
import CLinuxSys
import Glibc
import SwiftKataOS
import TTRPC

/// Waits for a freshly booted guest's agent: dials its channel until that works, then calls Health
/// until the first answer ("agent ready").
public enum AgentReadiness {
    /// Why the agent was not reached in time.
    public struct NotReady: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// How to reach the agent of one VM.
    public enum Endpoint: Sendable, Equatable {
        /// The host end of a virtio-serial port (a unix socket QEMU creates).
        case unixSocket(String)
        /// The agent's vsock port in the guest with this context id.
        case vsock(cid: UInt32)

        func dial() async throws -> TTRPCClient {
            switch self {
            case .unixSocket(let path): return try await TTRPCClient.connect(unixSocketPath: path)
            case .vsock(let cid):
                // From a privileged port: the agent serves only the host's root (AgentProtocol.isTrustedVsockPeer).
                let (fd, code) = await onBlockingThread { () -> (CInt, CInt) in
                    let fd = linux_vsock_connect_privileged(cid, AgentProtocol.vsockPort)
                    return (fd, fd < 0 ? errno : 0)
                }
                guard fd >= 0 else {
                    throw SystemError("connect", path: "vsock \(cid):\(AgentProtocol.vsockPort)", errno: Errno(rawValue: code))
                }
                return try await TTRPCClient.connect(connectedSocket: fd)
            }
        }
    }

    /// Waits for the agent at `socketPath` and closes the connection again.
    public static func waitForHealth(
        socketPath: String, deadline: ContinuousClock.Instant, isAlive: @escaping @Sendable () -> Bool = { true }
    ) async -> Result<Swiftkata_Agent_V1_HealthResponse, NotReady> {
        switch await connect(.unixSocket(socketPath), deadline: deadline, isAlive: isAlive) {
        case .success(let (client, health)):
            await client.close()
            return .success(health)
        case .failure(let error):
            return .failure(error)
        }
    }

    /// Dials `endpoint` until the agent answers Health or `deadline` passes.
    /// - Parameter isAlive: checked between attempts; a VM that died ends the wait at once.
    public static func connect(
        _ endpoint: Endpoint, deadline: ContinuousClock.Instant, isAlive: @escaping @Sendable () -> Bool = { true }
    ) async -> Result<(TTRPCClient, Swiftkata_Agent_V1_HealthResponse), NotReady> {
        await connect(endpoint, watch: .deadline(deadline, isAlive: isAlive))
    }

    /// Dials `endpoint` until the agent answers Health, and returns that connection for further calls;
    /// `watch` decides when the VM has failed (dead, stalled, or over its limit).
    public static func connect(
        _ endpoint: Endpoint, watch: BootWatch
    ) async -> Result<(TTRPCClient, Swiftkata_Agent_V1_HealthResponse), NotReady> {
        var judge = BootWatch.Judge(watch, started: ContinuousClock.now)
        var client: TTRPCClient?
        var lastError: (any Error)?
        // Answers in a row on this connection.
        var answered = 0
        while true {
            let now = ContinuousClock.now
            if let verdict = judge.verdict(at: now) {
                if let client { await client.close() }
                let detail = client == nil ? "no agent reachable at \(endpoint)" : "no agent answer (\(lastError.map { "\($0)" } ?? "timed out"))"
                return .failure(NotReady(description: "\(verdict); \(detail)"))
            }
            guard let connected = client else {
                client = try? await endpoint.dial()
                // QEMU creates the socket as it starts; until then there is nothing to wait on but time.
                if client == nil { try? await Task.sleep(for: .milliseconds(5)) }
                continue
            }
            // Requests written before the agent opened its port wait in the socket; a call that timed
            // out leaves a late reply the client drops, so retrying on one connection is safe.
            let remaining = judge.remaining(at: ContinuousClock.now)
            do {
                let health = try await Swiftkata_Agent_V1_AgentClient(connected).health(.init(), timeout: min(remaining, .seconds(2)))
                // Two answers in a row before the connection is handed on: the call right after
                // the agent's first answer was seen to get lost now and then (a hostile-suite
                // CreateSandbox never reached the agent, 30 s lost); a lost Health costs 2 s and is
                // simply asked again.
                answered += 1
                if answered >= 2 { return .success((connected, health)) }
            } catch {
                lastError = error
                answered = 0
                if !connected.isActive {
                    await connected.close()
                    client = nil
                }
            }
        }
    }
}
