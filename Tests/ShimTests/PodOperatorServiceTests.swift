import AgentAPI
import OperatorAPI
import TTRPC
import Testing

@testable import Shim

/// `swiftkata-ctl`'s view of a pod, driven through fakes: the description counts what the pod did,
/// and the debug console reports the guest's refusal as it is.
struct PodOperatorServiceTests {
    let context = TTRPCCallContext(service: "swiftkata.operator.v1.PodOperator", method: "Describe")

    @Test func describeReportsTheVMAndCountsAgentCallsAndOutput() async throws {
        let pod = try PodHarness()
        let service = PodOperatorService(pod: pod.pod)
        let before = try await service.describe(.init(), context: context)
        #expect(before.domain.isEmpty && before.containers == 0, "no VM before the first Create")

        _ = try await pod.create("c1")
        let fake = try pod.machine.fake
        try await pod.start("c1")
        await fake.emit(.init(id: "c1"), "twelve bytes")
        await fake.exit(.init(id: "c1"), status: 0)
        #expect(try await pod.wait("c1") == 0)

        let described = try await service.describe(.with { $0.askGuest = true }, context: context)
        #expect(described.domain == "swiftkata-fake")
        #expect(described.qemuPid == 4242)
        #expect(described.accelerator == "tcg" && described.transport == "virtio-serial")
        #expect(described.boot.totalMs == 10 && described.boot.agentReadyMs == 3)
        #expect(described.containers == 1)
        #expect(described.memoryBytes == 256 << 20)
        #expect(described.stdoutBytes == 12)
        let calls = Dictionary(uniqueKeysWithValues: described.agentCalls.map { ($0.method, $0) })
        #expect(calls["StartContainer"]?.calls == 1)
        #expect(calls["WaitProcess"]?.waits == true)
        #expect(calls["StartContainer"]?.waits == false)
    }

    @Test func aConsoleTheGuestRefusesIsAFailedPreconditionAndLeavesNothingOpen() async throws {
        let pod = try PodHarness()
        let service = PodOperatorService(pod: pod.pod)
        await #expect(throws: ShimError.self) { try await service.openConsole(.init(), context: context) }  // no VM yet
        _ = try await pod.create("c1")
        do {
            _ = try await service.openConsole(.with { $0.rows = 30 }, context: context)
            Issue.record("the console opened although the guest refused it")
        } catch let error as ShimError {
            #expect(error.ttrpcError.code == .failedPrecondition)
            #expect(error.description.contains("disabled"))
        }
        #expect(await pod.pod.consoles.isEmpty)
        await #expect(throws: ShimError.self) { try await service.readConsole(.with { $0.consoleID = "0123" }, context: context) }
    }
}
