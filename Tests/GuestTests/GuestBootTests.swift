import AgentAPI
import Foundation
import Testing
import TTRPC

/// Boots the real guest kernel and agent image under QEMU and talks to the agent.
@Suite("Guest boot", .serialized)
struct GuestBootTests {
    @Test func agentAnswersHealthWithTheGuestKernelRelease() async throws {
        let guest = try await QEMUGuest.boot()
        let (health, elapsed) = try await guest.waitForAgent()
        let (_, _, release) = try QEMUGuest.artifacts()
        #expect(health.apiVersion == AgentProtocol.apiVersion)
        #expect(health.kernelRelease == release)
        #expect(health.kernelRelease.hasSuffix("-swiftkata"))
        #expect(health.uptimeNanos > 0)
        print("agent ready \(elapsed) after QEMU exec; guest uptime \(Double(health.uptimeNanos) / 1e9) s")

        // A request without a container id is refused clearly, and the agent keeps serving.
        let error = await #expect(throws: TTRPCError.self) {
            try await guest.agentClient.createContainer(.init(), timeout: .seconds(10))
        }
        #expect(error?.code == .invalidArgument)
        #expect(try await guest.agentClient.health(.init(), timeout: .seconds(10)).apiVersion == AgentProtocol.apiVersion)
        await guest.shutdown()
    }
}
