import AgentAPI
import ContainerdAPI
import Foundation
import Logging
import SwiftKataConfig
import SwiftProtobuf
import Synchronization
import TTRPC
import Testing

@testable import Shim

/// One pod's task service over fakes of the VM, the agent and the host mounts: the whole lifecycle
/// containerd drives, in milliseconds and without QEMU. The end-to-end suites cover the same paths
/// against real containerd, libvirt and QEMU.
final class PodHarness: Sendable {
    let directory: URL
    let machines = FakeMachines()
    let filesystem = FakeFilesystem()
    let events = RecordingEvents()
    /// What the pod logged, from `warning` up.
    let log = CapturedLog()
    let pod: Pod
    let service: TaskService
    let shutdowns = ShutdownCounter()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-pod-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.runtime.stateDirectory = directory.appendingPathComponent("state").path
        // No anchor processes: they would outlive the test in this process (the end-to-end suites
        // run real ones).
        pod = Pod(
            namespace: "default", configuration: configuration, publisher: events, machines: machines, filesystem: filesystem,
            startAnchor: { nil }, servesOperators: false, logger: Logger(label: "test", factory: { [log] _ in log }))
        let shutdowns = shutdowns
        service = TaskService(pod: pod, onShutdown: { shutdowns.fire() })
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func context(_ method: String) -> TTRPCCallContext { TTRPCCallContext(service: "containerd.task.v2.Task", method: method) }

    /// Writes a bundle for container `id` and returns its Create request; stdout goes to a file.
    func createRequest(
        _ id: String, annotations: [String: String] = [:], resources: [String: Any] = [:]
    ) throws -> Containerd_Task_V2_CreateTaskRequest {
        let bundle = directory.appendingPathComponent("bundles/\(id)")
        try FileManager.default.createDirectory(at: bundle, withIntermediateDirectories: true)
        let spec: [String: Any] = [
            "ociVersion": "1.1.0", "process": ["args": ["/bin/sh"], "cwd": "/"], "root": ["path": "rootfs"],
            "annotations": annotations,
            "linux": [
                "namespaces": [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"], ["type": "network"]], "resources": resources,
            ],
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: bundle.appendingPathComponent("config.json"))
        return .with {
            $0.id = id
            $0.bundle = bundle.path
            $0.stdout = stdoutPath(id)
            $0.rootfs = [
                .with {
                    $0.type = "overlay"
                    $0.source = "overlay"
                    $0.options = ["lowerdir=/l", "upperdir=/u", "workdir=/w"]
                }
            ]
        }
    }

    /// The process's stdout: a file created up front, as containerd creates its FIFOs before Create.
    func stdoutPath(_ eventID: String) -> String {
        let path = directory.appendingPathComponent("\(eventID).out").path
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        return path
    }

    func create(_ id: String, annotations: [String: String] = [:], resources: [String: Any] = [:]) async throws -> UInt32 {
        try await service.create(try createRequest(id, annotations: annotations, resources: resources), context: context("Create")).pid
    }

    func start(_ id: String, exec: String = "") async throws {
        _ = try await service.start(
            .with {
                $0.id = id
                $0.execID = exec
            }, context: context("Start"))
    }

    func exec(_ id: String, exec: String) async throws {
        let process = try JSONSerialization.data(withJSONObject: ["args": ["/bin/true"], "cwd": "/"])
        _ = try await service.exec(
            .with {
                $0.id = id
                $0.execID = exec
                $0.stdout = stdoutPath(exec)
                $0.spec.typeURL = ContainerdNames.TypeURL.ociProcess
                $0.spec.value = process
            }, context: context("Exec"))
    }

    func wait(_ id: String, exec: String = "") async throws -> UInt32 {
        try await service.wait(
            .with {
                $0.id = id
                $0.execID = exec
            }, context: context("Wait")
        ).exitStatus
    }

    func kill(_ id: String, signal: Int32) async throws {
        _ = try await service.kill(
            .with {
                $0.id = id
                $0.signal = UInt32(signal)
            }, context: context("Kill"))
    }

    func delete(_ id: String, exec: String = "") async throws -> UInt32 {
        try await service.delete(
            .with {
                $0.id = id
                $0.execID = exec
            }, context: context("Delete")
        ).exitStatus
    }

    func state(_ id: String, exec: String = "") async throws -> Containerd_Task_V2_StateResponse {
        try await service.state(
            .with {
                $0.id = id
                $0.execID = exec
            }, context: context("State"))
    }

    var machine: FakeMachine {
        get throws { try #require(machines.last) }
    }
}

final class ShutdownCounter: Sendable {
    private let count = Mutex(0)
    func fire() { count.withLock { $0 += 1 } }
    var fired: Int { count.withLock { $0 } }
}

@Suite("Pod lifecycle (fakes)")
struct PodLifecycleTests {
    @Test func containerAndExecFromCreateToShutdown() async throws {
        let pod = try PodHarness()
        let pid = try await pod.create("c1")
        let machine = try pod.machine
        #expect(pid == 4242, "every task of the pod shows QEMU's pid")
        #expect(pod.filesystem.shared == ["c1"])
        #expect(try await pod.state("c1").status == .created)

        try await pod.start("c1")
        #expect(try await pod.state("c1").status == .running)
        try await pod.exec("c1", exec: "e1")
        #expect(try await pod.state("c1", exec: "e1").status == .created)
        try await pod.start("c1", exec: "e1")
        await machine.fake.exit(.init(id: "c1", exec: "e1"), status: 3)
        #expect(try await pod.wait("c1", exec: "e1") == 3)
        #expect(try await pod.delete("c1", exec: "e1") == 3)

        try await pod.kill("c1", signal: SIGKILL)
        #expect(try await pod.wait("c1") == 137)
        #expect(try await pod.state("c1").status == .stopped)
        #expect(try await pod.delete("c1") == 137)
        #expect(pod.filesystem.shared.isEmpty, "Delete undoes the container's shares")
        #expect(!(await machine.fake.calls.contains("RemoveContainer")), "the last container's guest side goes with the VM")

        _ = try await pod.service.shutdown(.init(), context: pod.context("Shutdown"))
        #expect(pod.shutdowns.fired == 1, "Shutdown of an empty pod ends the daemon")
        await pod.pod.shutdownVM()
        #expect(machine.destroyCount == 1)
        #expect(pod.filesystem.removedPods.count == 1)
        #expect(pod.machines.booted.count == 1)
        #expect(await pod.events.topics == ["create", "start", "exec-added", "exec-started", "exit", "exit", "delete"])
        let exits = await pod.events.exits
        #expect(exits.map(\.id) == ["e1", "c1"])
        #expect(exits.map(\.exitStatus) == [3, 137])
    }

    @Test func secondContainerJoinsThePodsVM() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("sandbox", annotations: ["io.kubernetes.cri.container-type": "sandbox"])
        try await pod.start("sandbox")
        _ = try await pod.create(
            "app",
            annotations: [
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.sandbox-id": "sandbox",
            ])
        #expect(pod.machines.booted.count == 1)
        #expect(pod.filesystem.shared == ["sandbox", "app"])
        _ = try await pod.service.shutdown(.init(), context: pod.context("Shutdown"))
        #expect(pod.shutdowns.fired == 0, "Shutdown waits for the pod's last container")
    }

    @Test func onlyTheLastContainersGuestSideIsLeftToTheVMsEnd() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("sandbox", annotations: ["io.kubernetes.cri.container-type": "sandbox"])
        let fake = try pod.machine.fake
        try await pod.start("sandbox")
        let app = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sandbox"]
        _ = try await pod.create("app", annotations: app)
        try await pod.start("app")
        await fake.exit(.init(id: "app"), status: 0)
        #expect(try await pod.wait("app") == 0)
        #expect(try await pod.delete("app") == 0)
        #expect(await fake.calls.filter { $0 == "RemoveContainer" }.count == 1, "a container leaving a running pod is removed in the guest")

        await fake.exit(.init(id: "sandbox"), status: 0)
        #expect(try await pod.wait("sandbox") == 0)
        #expect(try await pod.delete("sandbox") == 0)
        #expect(await fake.calls.filter { $0 == "RemoveContainer" }.count == 1, "the pod's last one is not waited for")

        // A Create instead of the Shutdown: the guest's leftover goes first.
        _ = try await pod.create("app2", annotations: app)
        let calls = await fake.calls
        let removal = try #require(calls.lastIndex(of: "RemoveContainer"))
        #expect(calls.filter { $0 == "RemoveContainer" }.count == 2)
        #expect(try #require(calls.lastIndex(of: "CreateContainer")) > removal)
    }

    @Test func exitIsPublishedOnlyAfterTheOutputReachedContainerd() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        let fake = try pod.machine.fake
        await pod.events.watchStdout(of: "c1", at: pod.stdoutPath("c1"))
        try await pod.start("c1")
        await fake.emit(.init(id: "c1"), "first line\n")
        // The guest reports the exit while output is still on its way.
        await fake.exit(.init(id: "c1"), status: 0, keepOutputOpen: true)
        await fake.emit(.init(id: "c1"), "last line\n")
        await fake.endOutput(.init(id: "c1"))
        #expect(try await pod.wait("c1") == 0)
        let exit = try #require(await pod.events.recorded.first { $0.topic == ContainerdNames.Topic.taskExit })
        #expect(exit.stdoutAtExit == "first line\nlast line\n")
    }

    /// QEMU killed on a loaded host: the agent connection closes, the last Delete and the shutdown
    /// come before the lifecycle watch has handled QEMU's exit. The pod still says why it ended.
    @Test func aVMThatDiedIsReportedEvenWhenTheShutdownComesFirst() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        let machine = try pod.machine
        try await pod.start("c1")
        let reportStop = await machine.dieWithoutReport()
        #expect(try await pod.wait("c1") == 255)
        async let shutdown: Void = pod.pod.shutdownVM()
        reportStop()
        await shutdown
        #expect(pod.log.messages.contains("pod VM stopped unexpectedly"))
    }

    @Test func qemuDyingMidCallEndsEveryProcessWithStatus255() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        let machine = try pod.machine
        try await pod.start("c1")
        try await pod.exec("c1", exec: "e1")
        try await pod.start("c1", exec: "e1")
        async let initWait = pod.wait("c1")
        async let execWait = pod.wait("c1", exec: "e1")
        await machine.die()
        #expect(try await initWait == 255)
        #expect(try await execWait == 255)
        #expect(await pod.events.exits.map(\.exitStatus) == [255, 255])
        // The pod is over: a new container gets a clear error, not a hang.
        await #expect(throws: ShimError.unavailable("the VM of pod c1 has stopped")) {
            _ = try await pod.create("c2", annotations: ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "c1"])
        }
        #expect(try await pod.delete("c1", exec: "e1") == 255)
        #expect(try await pod.delete("c1") == 255)
        #expect(pod.filesystem.shared.isEmpty)
    }

    @Test func anAgentTimeoutFailsTheCallWithDeadlineExceeded() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        try await pod.start("c1")
        await try pod.machine.fake.fail("SignalProcess", with: TTRPCError(.deadlineExceeded, "deadline exceeded"))
        let error = await #expect(throws: ShimError.self) { try await pod.kill("c1", signal: SIGTERM) }
        #expect(error?.ttrpcError.code == .deadlineExceeded)
        #expect(error?.description.contains("the guest agent did not answer in time") == true)
        #expect(try await pod.state("c1").status == .running, "a failed call changes nothing")
    }

    @Test func aCreateTheGuestRefusesLeavesNoVMNoSharesNoEvents() async throws {
        let pod = try PodHarness()
        // The guest cannot find the executable: the create fails with the guest's code and message.
        pod.machines.failAgentCalls(["CreateContainer": TTRPCError(.notFound, "exec: \"/bin/sh\": executable file not found")])
        let error = await #expect(throws: ShimError.self) { _ = try await pod.create("c1") }
        #expect(error?.ttrpcError.code == .notFound)
        #expect(error?.description.contains("executable file not found") == true)
        let machine = try pod.machine
        #expect(machine.destroyCount == 1, "the VM booted for the failed container is destroyed")
        #expect(pod.filesystem.shared.isEmpty)
        #expect(pod.filesystem.removedPods == ["c1"])
        #expect(await pod.events.recorded.isEmpty)
        #expect(await pod.pod.isEmpty)
        await #expect(throws: ShimError.self) { _ = try await pod.state("c1") }

        // containerd ends the shim after a failed first Create: Shutdown finds nothing left.
        _ = try await pod.service.shutdown(.init(), context: pod.context("Shutdown"))
        #expect(pod.shutdowns.fired == 1)
    }

    @Test func aBootThatFailsLeavesNothingBehind() async throws {
        let pod = try PodHarness()
        pod.machines.failBoots(with: .unavailable("the guest agent did not answer within 20 s"))
        await #expect(throws: ShimError.unavailable("the guest agent did not answer within 20 s")) { _ = try await pod.create("c1") }
        #expect(pod.filesystem.shared.isEmpty)
        #expect(pod.filesystem.removedPods == ["c1"])
        #expect(await pod.pod.isEmpty)
    }

    @Test func aLyingGuestPIDFailsTheCallAndLeavesNothing() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        await try pod.machine.fake.replyWithPID(0xFFFF_FFFF)
        try await pod.exec("c1", exec: "e1")
        let error = await #expect(throws: ShimError.self) { try await pod.start("c1", exec: "e1") }
        #expect(error?.description.contains("outside 1...4194304") == true)
        #expect(try await pod.state("c1", exec: "e1").status == .created)
    }

    @Test func statsAndPidsComeFromTheGuest() async throws {
        let pod = try PodHarness()
        _ = try await pod.create("c1")
        try await pod.start("c1")
        let stats = try await pod.service.stats(.with { $0.id = "c1" }, context: pod.context("Stats"))
        #expect(stats.stats.typeURL == ContainerdNames.TypeURL.cgroupsV2Metrics)
        let metrics = try Io_Containerd_Cgroups_V2_Metrics(serializedBytes: stats.stats.value)
        #expect(metrics.memory.usage == 1 << 20)
        let pids = try await pod.service.pids(.with { $0.id = "c1" }, context: pod.context("Pids"))
        #expect(pids.processes.map(\.pid) == [1])
    }

    @Test func containerdsStateMachineIsEnforced() async throws {
        let pod = try PodHarness()
        await #expect(throws: ShimError.self) { try await pod.start("nope") }
        _ = try await pod.create("c1")
        await #expect(throws: ShimError.alreadyExists("container c1")) { _ = try await pod.create("c1") }
        try await pod.start("c1")
        let again = await #expect(throws: ShimError.self) { try await pod.start("c1") }
        #expect(again?.ttrpcError.code == .failedPrecondition)
        let running = await #expect(throws: ShimError.self) { _ = try await pod.delete("c1") }
        #expect(running?.ttrpcError.code == .failedPrecondition)
        let unknownExec = await #expect(throws: ShimError.self) { _ = try await pod.state("c1", exec: "missing") }
        #expect(unknownExec?.ttrpcError.code == .notFound)
        try await pod.kill("c1", signal: SIGKILL)
        _ = try await pod.wait("c1")
        let finished = await #expect(throws: ShimError.self) { try await pod.kill("c1", signal: SIGKILL) }
        #expect(finished?.ttrpcError.code == .notFound, "containerd treats a kill of a finished process as done")
    }
}
