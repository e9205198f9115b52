import AgentAPI
import ContainerdAPI
import Hypervisor
import Logging
import TTRPC
import Testing

@testable import Shim

@Suite struct ShimArgumentTests {
    @Test func containerdStartCommandLine() throws {
        let arguments = try ShimArguments(parsing: [
            "-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
            "-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start",
        ])
        #expect(arguments.namespace == "k8s.io")
        #expect(arguments.address == "/run/containerd/containerd.sock")
        #expect(arguments.id == "abc")
        #expect(arguments.debug)
        #expect(arguments.action == .start)
    }

    @Test func goFlagSpellings() throws {
        let arguments = try ShimArguments(parsing: ["--namespace=default", "-id=x", "-bundle", "/b", "-debug=false", "delete"])
        #expect(arguments.namespace == "default")
        #expect(arguments.id == "x")
        #expect(arguments.bundle == "/b")
        #expect(!arguments.debug)
        #expect(arguments.action == .delete)
        #expect(try ShimArguments(parsing: ["-namespace", "n", "-id", "x"]).action == .daemon)
        // The operator's command needs no containerd flags.
        #expect(try ShimArguments(parsing: ["drain-pool"]).action == .drainPool)
    }

    @Test(arguments: [
        (["-id", "x", "start"], "-namespace is required"),
        (["-namespace", "n", "-bogus", "start"], "unknown flag -bogus"),
        (["-namespace", "n", "stop"], "unknown action \"stop\""),
        (["-namespace"], "flag -namespace needs a value"),
    ])
    func badCommandLines(arguments: [String], message: String) {
        #expect { try ShimArguments(parsing: arguments) } throws: { "\($0)".contains(message) }
    }

    @Test func addressMatchesContainerdsHash() {
        // The example from SHIM-CONTRACT.md B.3.
        let address = ShimAddress(containerdAddress: "/run/containerd/containerd.sock", namespace: "k8s.io", groupID: "abc")
        #expect(address.uri == "unix:///run/containerd/s/a99a1752d3a0fadfb1f869026f16760475df03a572e20f4ccea9e6c1e5470b72")
        #expect(ShimAddress.joinPath("/run//x/", "ns", "id") == "/run/x/ns/id")
        #expect(ShimAddress(uri: "unix:///run/containerd/s/ab\n")?.socketPath == "/run/containerd/s/ab")
        #expect(ShimAddress(uri: "tcp://x") == nil)
    }

    @Test func sha256KnownAnswers() {
        #expect(Digest.sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

@Suite struct BundleSpecTests {
    static let sandboxSpec = """
        {"ociVersion":"1.0.2","process":{"terminal":true,"args":["sh"]},"root":{"path":"rootfs"},"hostname":"web",
         "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                   {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","ro"]}],
         "linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},"x-unknown":[1,2.5,null,true]},
         "annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"pod-1"}}
        """

    @Test func podRoleFromCRIAnnotations() throws {
        let sandbox = try BundleSpec(bytes: Array(Self.sandboxSpec.utf8))
        #expect(sandbox.podRole == .sandbox)
        #expect(sandbox.podID(containerID: "pod-1") == "pod-1")
        let member = try BundleSpec(
            bytes: Array(#"{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod-1"}}"#.utf8))
        #expect(member.podRole == .container(sandboxID: "pod-1"))
        #expect(member.podID(containerID: "app") == "pod-1")
        let plain = try BundleSpec(bytes: Array("{}".utf8))
        #expect(plain.podID(containerID: "c") == "c")
    }

    @Test func guestSpecRewritesRootAndBindSourcesAndKeepsTheRest() throws {
        let spec = try BundleSpec(bytes: Array(Self.sandboxSpec.utf8))
        #expect(spec.hostname == "web")
        #expect(spec.terminal)
        let binds = spec.hostBindMounts
        #expect(binds.count == 1 && binds[0].index == 1 && binds[0].source == "/srv/data" && binds[0].readOnly)
        let guest = try JSONValue.decode(
            spec.guestSpec(rootInSharedFS: "c1/rootfs", guestSources: [1: "/run/swiftkata/shared/c1/mounts/1"], guestSeccomp: false))
        #expect(guest["root"]?["path"] == .string("c1/rootfs"))
        #expect(guest["mounts"]?.arrayValue?[1]["source"] == .string("/run/swiftkata/shared/c1/mounts/1"))
        #expect(guest["mounts"]?.arrayValue?[0]["source"] == .string("proc"))
        #expect(guest["linux"]?["seccomp"] == nil)
        #expect(guest["linux"]?["x-unknown"] == .array([.integer(1), .number(2.5), .null, .bool(true)]))
        #expect(guest["ociVersion"] == .string("1.0.2"))
    }

    @Test func badSpecsAreInvalidArguments() {
        #expect(throws: ShimError.self) { try BundleSpec(bytes: Array("not json".utf8)) }
        #expect(throws: ShimError.self) { try BundleSpec(bytes: Array("[1]".utf8)) }
        #expect(throws: ShimError.self) { try BundleSpec(bytes: [UInt8](repeating: 0x20, count: BundleSpec.maxSpecBytes + 1)) }
    }

    @Test func identifiersAreValidated() {
        #expect(throws: Never.self) { try validateIdentifier("pod-1_a.b", what: "id") }
        for bad in ["", "..", "a/b", "a b", String(repeating: "x", count: 77)] {
            #expect(throws: ShimError.self) { try validateIdentifier(bad, what: "id") }
        }
    }
}

@Suite struct ShimMappingTests {
    @Test func errorsCarryContainerdClasses() {
        #expect(ShimError.notFound("container x").ttrpcError.code == .notFound)
        #expect(ShimError.notFound("container x").ttrpcError.message == "container x: not found")
        #expect(ShimError.failedPrecondition("p").ttrpcError.code == .failedPrecondition)
        #expect(ShimError.agent("op", TTRPCErrorFixture.deadline).ttrpcError.code == .deadlineExceeded)
        #expect(ShimError.agent("op", TTRPCErrorFixture.closed).ttrpcError.code == .unavailable)
    }

    @Test func cgroupStatsBecomeV2Metrics() {
        var stats = Swiftkata_Agent_V1_CgroupStats()
        stats.cpuStat = ["usage_usec": 10, "user_usec": 6, "system_usec": 4]
        stats.memoryStat = ["anon": 100, "file": 50, "pgfault": 7, "inactive_file": 20]
        stats.memoryCurrent = 4096
        stats.memoryMax = 8192
        stats.pidsCurrent = 3
        stats.memoryEvents = ["oom_kill": 1]
        stats.io = Array(repeating: Swiftkata_Agent_V1_IOStat(), count: 1000)
        let metrics = CgroupMetrics.v2(stats)
        #expect(metrics.cpu.usageUsec == 10 && metrics.cpu.userUsec == 6 && metrics.cpu.systemUsec == 4)
        #expect(metrics.memory.usage == 4096 && metrics.memory.usageLimit == 8192)
        #expect(metrics.memory.anon == 100 && metrics.memory.pgfault == 7 && metrics.memory.inactiveFile == 20)
        #expect(metrics.pids.current == 3)
        #expect(metrics.memoryEvents.oomKill == 1)
        #expect(metrics.io.usage.count == CgroupMetrics.maxIOEntries)
    }

    @Test func stdioURIs() throws {
        #expect(try StdioPaths.resolve("") == "")
        #expect(try StdioPaths.resolve("/run/fifo") == "/run/fifo")
        #expect(try StdioPaths.resolve("file:///var/log/x") == "/var/log/x")
        #expect(throws: ShimError.self) { try StdioPaths.resolve("binary:///usr/bin/logger") }
    }

}

enum TTRPCErrorFixture {
    static let deadline = TTRPCError(.deadlineExceeded, "timeout")
    static let closed = TTRPCError.closed
}

/// Numbers from the guest are checked before the shim converts or adds them.
@Suite struct GuestValueTests {
    @Test func guestPIDsOutsideLinuxRangeAreRefused() throws {
        #expect(try GuestAgent.validGuestPID(1, "x") == 1)
        #expect(try GuestAgent.validGuestPID(4_194_304, "x") == 4_194_304)
        for lie: UInt32 in [0, 4_194_305, UInt32(Int32.max) + 1, .max] {
            #expect(throws: ShimError.self) { try GuestAgent.validGuestPID(lie, "starting container c") }
        }
    }

    @Test func metricSumsSaturateInsteadOfTrapping() {
        #expect(saturatingSum(.max, 1) == .max)
        #expect(saturatingSum(2, 3) == 5)
        var stats = Swiftkata_Agent_V1_CgroupStats()
        stats.memoryStat = ["workingset_refault_anon": .max, "workingset_refault_file": .max]
        #expect(CgroupMetrics.v2(stats).memory.workingsetRefault == .max)
    }
}

/// The tap's ingress filter: only the pod's own MAC and addresses reach eth0.
@Suite struct PodNICFilterTests {
    @Test func onlyThePodsAddressesAndNeighbourDiscoveryPass() {
        let filters = PodNICFilter.filters(
            tap: "sktap1", device: "eth0", mac: "02:00:0a:63:00:05",
            addresses: [
                .init(ip: "10.99.0.5", prefixLength: 24), .init(ip: "fd00::5", prefixLength: 64), .init(ip: "fe80::1", prefixLength: 64),
            ])
        let lines = filters.map { $0.joined(separator: " ") }
        #expect(lines.allSatisfy { $0.hasPrefix("filter add dev sktap1 parent ffff: protocol ") })
        #expect(
            lines.contains(
                "filter add dev sktap1 parent ffff: protocol ip prio 10 u32 match ip src 10.99.0.5/32 match ether src 02:00:0a:63:00:05 action mirred egress redirect dev eth0"
            ))
        #expect(
            lines.contains {
                $0.contains("protocol arp prio 11") && $0.contains("match u16 0x0a63 0xffff at 14 match u16 0x0005 0xffff at 16")
                    && $0.contains("match u16 0x0200 0xffff at 8 match u16 0x0a63 0xffff at 10 match u16 0x0005 0xffff at 12")
            })
        #expect(lines.contains { $0.contains("match ip6 src fd00::5/128") })
        #expect(!lines.contains { $0.contains("fe80::1/128") }, "link-local goes through the neighbour-discovery rules only")
        #expect(!lines.contains { $0.contains("0xff at 40") && $0.contains("134") }, "no router advertisements")
        #expect(lines.last == "filter add dev sktap1 parent ffff: protocol all prio 99 u32 match u32 0 0 action mirred egress redirect dev sktap1")
    }

    @Test func addressWordsAndMACMatches() {
        #expect(PodNICFilter.ipv4Words("10.213.0.2")! == ("0x0ad5", "0x0002"))
        #expect(PodNICFilter.ipv4Words("300.1.1.1") == nil)
        #expect(
            PodNICFilter.macMatch("aa:bb:cc:dd:ee:ff", at: 8) == [
                "match", "u16", "0xaabb", "0xffff", "at", "8", "match", "u16", "0xccdd", "0xffff", "at", "10", "match", "u16", "0xeeff", "0xffff", "at", "12",
            ])
    }
}

/// A guest flooding OOM events: one TaskOOM per container per interval goes out, the rest are counted.
@Suite struct OOMEventLimiterTests {
    @Test func aFloodIsCoalescedPerContainer() {
        var limiter = OOMEventLimiter(interval: .seconds(1))
        let start = ContinuousClock.now
        var published = 0
        for index in 0..<10_000 {
            if limiter.admit("c1", at: start + .microseconds(index)) { published += 1 }
        }
        #expect(published == 1)
        #expect(limiter.coalesced == 9_999)
        let other = limiter.admit("c2", at: start + .milliseconds(10))
        #expect(other, "another container's OOM still goes out")
        let next = limiter.admit("c1", at: start + .seconds(1))
        #expect(next, "the next interval publishes again")
        limiter.remove("c1")
        let afterRemoval = limiter.admit("c1", at: start + .seconds(1) + .milliseconds(1))
        #expect(afterRemoval)
    }
}

/// The event queue while containerd does not take events: OOMs stop at the bound, exits never.
@Suite struct EventQueueBoundTests {
    @Test func oomEventsStopAtTheBoundAndExitsAreKept() async {
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let publisher = EventPublisher(address: "/nonexistent/containerd.sock.ttrpc", namespace: "n", logger: quiet)
        var oom = Containerd_Events_TaskOOM()
        oom.containerID = "c"
        for _ in 0..<(EventPublisher.maxQueued + 500) {
            await publisher.publish(topic: ContainerdNames.Topic.taskOOM, event: oom, typeName: "TaskOOM")
        }
        let afterFlood = await publisher.queuedCount
        #expect(afterFlood <= EventPublisher.maxQueued)
        var exit = Containerd_Events_TaskExit()
        exit.containerID = "c"
        await publisher.publish(topic: ContainerdNames.Topic.taskExit, event: exit, typeName: "TaskExit")
        let afterExit = await publisher.queuedCount
        #expect(afterExit == afterFlood + 1, "an exit is never dropped")
    }
}

@Suite struct ShimErrorTests {
    /// A detail added to a failure (the guest's console after a silent guest) keeps its class, so
    /// containerd still sees DeadlineExceeded.
    @Test func anAppendedDetailKeepsTheStatusCode() {
        let error = ShimError.deadlineExceeded("creating the sandbox in the guest: the guest agent did not answer in time")
            .appending("guest console: [    0.4] Freeing unused kernel image")
        #expect(error.ttrpcError.code == .deadlineExceeded)
        #expect(error.description.contains("did not answer in time; guest console: [    0.4] Freeing unused kernel image"))
    }
}
