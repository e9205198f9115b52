import AgentAPI
import Foundation
import TTRPC
import Testing

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
        #expect(health.guestMemoryTotalBytes > 0 && health.guestMemoryUsedBytes <= health.guestMemoryTotalBytes)
        print("agent ready \(elapsed) after QEMU exec; guest uptime \(Double(health.uptimeNanos) / 1e9) s")

        // A request without a container id is refused clearly, and the agent keeps serving.
        let error = await #expect(throws: TTRPCError.self) {
            try await guest.agentClient.createContainer(.init(), timeout: .seconds(10))
        }
        #expect(error?.code == .invalidArgument)
        // This VM booted without `swiftkata.debug_console=1`: the operator's console does not exist.
        let refused = await #expect(throws: TTRPCError.self) {
            try await guest.agentClient.startDebugConsole(.with { $0.consoleID = "c1" }, timeout: .seconds(10))
        }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.message.contains("disabled") == true)
        #expect(try await guest.agentClient.health(.init(), timeout: .seconds(10)).apiVersion == AgentProtocol.apiVersion)
        await guest.shutdown()
    }

    /// A pre-booted VM waits with no host end on the agent's virtio-serial port, possibly for minutes:
    /// the agent must wait for a host without spinning, and answer the host that connects later.
    @Test func agentAnswersAHostThatConnectsAfterAnIdleGap() async throws {
        let guest = try await QEMUGuest.boot()
        do {
            _ = try await guest.waitForAgent()
            await guest.agent.close()

            // Nothing connected for longer than the agent's safety re-check (1 s). QEMU's CPU time over
            // 2 s of it shows whether the agent polls; printed only, as it depends on the host's load.
            try await Task.sleep(for: .milliseconds(500))
            let before = try guest.qemuCPUTime()
            try await Task.sleep(for: .seconds(2))
            let idle = try guest.qemuCPUTime() - before
            print("QEMU CPU time with no host connected: \(idle) over 2 s")

            for round in 1...3 {
                let connecting = ContinuousClock.now
                let client = try await guest.connectAgent()
                let health = try await Swiftkata_Agent_V1_AgentClient(client).health(.init(), timeout: .seconds(10))
                #expect(health.apiVersion == AgentProtocol.apiVersion)
                print("reconnect \(round): Health answered \(ContinuousClock.now - connecting) after connecting")
                await client.close()
                try await Task.sleep(for: .milliseconds(300))
            }
        } catch {
            await guest.shutdown()
            throw error
        }
        await guest.shutdown()
    }

    /// Host sessions back to back on the virtio-serial port (README, "The guest": host sessions on
    /// virtio-serial). Before the agent relayed its port, almost every run lost a request or crashed
    /// the agent (NIO's read-to-EOF trap: a kernel panic). A lost request is recorded as a known
    /// issue, so a rare one does not fail the suite but shows; an agent that no longer answers after
    /// a pause (PID 1 died) fails the test.
    @Test func backToBackHostSessionsOnVirtioSerial() async throws {
        let guest = try await QEMUGuest.boot()
        do {
            _ = try await guest.waitForAgent()
            await guest.agent.close()
            var failed = 0
            for round in 1...10 {
                let client = try await guest.connectAgent()
                await withKnownIssue("back-to-back virtio-serial sessions lose requests", isIntermittent: true) {
                    do {
                        let health = try await Swiftkata_Agent_V1_AgentClient(client).health(.init(), timeout: .seconds(5))
                        #expect(health.apiVersion == AgentProtocol.apiVersion)
                    } catch {
                        failed += 1
                        Issue.record("session \(round): \(error)")
                    }
                }
                await client.close()
                // A session that lost its request leaves the port in an unknown state: start the next
                // one from a quiet port, as the test is about the hand-over, not about recovery.
                if failed > 0 { break }
            }
            // Whatever happened above, the agent is alive and answers the next host after a pause
            // (a crash of PID 1 would have taken the VM down).
            try await Task.sleep(for: .milliseconds(300))
            let client = try await guest.connectAgent()
            let health = try await Swiftkata_Agent_V1_AgentClient(client).health(.init(), timeout: .seconds(10))
            #expect(health.apiVersion == AgentProtocol.apiVersion)
            await client.close()
            print("back-to-back virtio-serial sessions: \(failed == 0 ? "10 of 10 answered" : "a request was lost")")
        } catch {
            await guest.shutdown()
            throw error
        }
        await guest.shutdown()
    }
}
