import AgentAPI
import ContainerdAPI
import Foundation
import SwiftKataConfig
import Testing

@testable import Shim

/// The pod's VM follows its containers' limits (`Pod+Resize`), over fakes: what is resized, in
/// which order with the guest's own limits, and what a refused growth leaves.
@Suite struct PodResizeTests {
    static func limits(cpus: Int, memoryMiB: Int) -> [String: Any] {
        ["cpu": ["quota": cpus * 100_000, "period": 100_000], "memory": ["limit": memoryMiB << 20]]
    }

    func update(_ harness: PodHarness, _ id: String, cpus: Int, memoryMiB: Int) async throws {
        let resources = try JSONSerialization.data(withJSONObject: Self.limits(cpus: cpus, memoryMiB: memoryMiB))
        _ = try await harness.service.update(
            .with {
                $0.id = id
                $0.resources.typeURL = ContainerdNames.TypeURL.ociLinuxResources
                $0.resources.value = resources
            }, context: harness.context("Update"))
    }

    @Test func aContainerWithLimitsBeyondTheVMGrowsItBeforeTheGuestCreatesIt() async throws {
        let harness = try PodHarness()
        _ = try await harness.create("sandbox")
        let machine = try #require(harness.machines.last)
        #expect(machine.resizes.isEmpty, "a container without limits needs no more than the base")

        let joining = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sandbox"]
        _ = try await harness.create("worker", annotations: joining, resources: Self.limits(cpus: 2, memoryMiB: 768))
        #expect(machine.resizes == [VMSize(vcpus: 3, memoryMiB: 1024)])
        let calls = await machine.fake.calls
        let grown = try #require(calls.firstIndex(of: "AdjustResources"))
        #expect(calls.lastIndex(of: "CreateContainer")! > grown, "the VM grows before the guest creates the container")
    }

    @Test func anUpdateGrowsBeforeTheGuestLimitsAndShrinksAfterThem() async throws {
        let harness = try PodHarness()
        _ = try await harness.create("c1", resources: Self.limits(cpus: 1, memoryMiB: 256))
        let machine = try #require(harness.machines.last)
        #expect(machine.resizes == [VMSize(vcpus: 2, memoryMiB: 512)])

        try await update(harness, "c1", cpus: 2, memoryMiB: 1024)
        #expect(machine.resizes.last == VMSize(vcpus: 3, memoryMiB: 1280))
        var calls = await machine.fake.calls
        #expect(Array(calls.suffix(2)) == ["AdjustResources", "UpdateContainer"])

        try await update(harness, "c1", cpus: 1, memoryMiB: 128)
        #expect(machine.resizes.last == VMSize(vcpus: 2, memoryMiB: 384))
        calls = await machine.fake.calls
        #expect(Array(calls.suffix(2)) == ["UpdateContainer", "AdjustResources"])
    }

    @Test func aGrowthTheGuestDoesNotTakeFailsTheUpdateAndLeavesThePodAsItWas() async throws {
        let harness = try PodHarness()
        _ = try await harness.create("c1")
        let machine = try #require(harness.machines.last)
        await machine.fake.refuseHotplug()

        let error = await #expect(throws: Error.self) { try await update(harness, "c1", cpus: 2, memoryMiB: 1024) }
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("the guest took"))
        #expect(!(await machine.fake.calls).contains("UpdateContainer"), "the guest's limits stay as they were")
        // Put back to its size before (the base: nothing needs more).
        #expect(machine.resizes == [VMSize(vcpus: 3, memoryMiB: 1280), VMSize(vcpus: 1, memoryMiB: 256)])
    }

    @Test func limitsAboveTheMaximumAreRefusedByNameWithoutResizing() async throws {
        let harness = try PodHarness()
        _ = try await harness.create("c1")
        let machine = try #require(harness.machines.last)
        let error = await #expect(throws: Error.self) { try await update(harness, "c1", cpus: 64, memoryMiB: 256) }
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("the guest kernel's 8 CPUs"))
        #expect(machine.resizes.isEmpty)
    }
}

@Suite struct ContainerLimitsTests {
    @Test func limitsComeFromTheOCIResources() throws {
        let resources = try JSONValue.decode(Array(#"{"cpu":{"quota":150000,"period":100000},"memory":{"limit":805306368}}"#.utf8))
        #expect(ContainerLimits(resources: resources) == ContainerLimits(cpuMillis: 1500, memoryBytes: 768 << 20))
        // Unlimited (-1), missing and zero values are no limit, as in runc.
        let unlimited = try JSONValue.decode(Array(#"{"cpu":{"quota":-1,"period":100000},"memory":{"limit":-1}}"#.utf8))
        #expect(ContainerLimits(resources: unlimited).isEmpty)
        #expect(ContainerLimits(resources: nil).isEmpty)
        // An absurd quota is clamped, so the sizing refuses it by name instead of overflowing.
        let absurd = try JSONValue.decode(Array(#"{"cpu":{"quota":9223372036854775807,"period":1}}"#.utf8))
        #expect(ContainerLimits(resources: absurd).cpuMillis == ContainerLimits.largestCPUMillis)
    }

    @Test func theVMNeedsTheBasePlusTheSumAndNeverLessThanItBootedWith() throws {
        let hypervisor = Configuration().hypervisor
        let host = PodSizing.Host(memoryMiB: 8192)
        let two = [ContainerLimits(cpuMillis: 1500, memoryBytes: 512 << 20), ContainerLimits(cpuMillis: 500, memoryBytes: 256 << 20)]
        let base = VMSize(vcpus: 1, memoryMiB: 256)
        #expect(try PodSizing.target(boot: base, containers: .total(two), hypervisor: hypervisor, host: host) == VMSize(vcpus: 3, memoryMiB: 1024))
        let sizedAtBoot = VMSize(vcpus: 4, memoryMiB: 2048)
        #expect(try PodSizing.target(boot: sizedAtBoot, containers: .total(two), hypervisor: hypervisor, host: host) == sizedAtBoot)
        #expect(throws: ShimError.self) {
            try PodSizing.target(boot: base, containers: ContainerLimits(memoryBytes: 16 << 30), hypervisor: hypervisor, host: host)
        }
    }

    @Test func aCPULimitBeyondTheHostGetsTheHostsCPUsUnlessAMaximumIsConfigured() throws {
        var hypervisor = Configuration().hypervisor
        let twoCores = PodSizing.Host(memoryMiB: 8192, cpus: 2)
        let four = ContainerLimits(cpuMillis: 4000)
        let base = VMSize(vcpus: 1, memoryMiB: 256)
        // No pod can use more than the node's 2 CPUs: the base plus 2, not an error (as under runc).
        #expect(try PodSizing.target(boot: base, containers: four, hypervisor: hypervisor, host: twoCores).vcpus == 3)
        #expect(PodSizing.usefulVCPUs(hypervisor: hypervisor, host: twoCores) == 3)
        // A configured maximum is a limit: above it the update fails, naming it.
        hypervisor.maxVCPUs = 4
        #expect(PodSizing.usefulVCPUs(hypervisor: hypervisor, host: twoCores) == 4)
        let error = #expect(throws: ShimError.self) { try PodSizing.target(boot: base, containers: four, hypervisor: hypervisor, host: twoCores) }
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("hypervisor.max_vcpus (4)"))
    }
}
