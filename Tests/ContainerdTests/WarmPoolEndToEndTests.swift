import Foundation
import Testing

/// The warm pool through real containerd, libvirt and QEMU: a pod's shim refills the pool once its
/// container runs, the next pod claims that running VM (its NIC still has the pool's MAC address,
/// which a freshly booted VM of a pod without a network does not have at all), and a pod on a
/// claimed VM whose shim is killed still leaves nothing behind. (The pod network on a claimed VM:
/// `guestTakesOverTheNamespaceInterface`.)
///
/// Part of `ShimEndToEndTests` (its checks for leftovers assume no other pod of the test namespace runs).
extension ShimEndToEndTests {
    /// The test configuration with a pool of one VM.
    var poolConfig: String {
        get throws {
            let path = "\(containerd.directory)/configuration-pool.toml"
            let text = try String(contentsOfFile: containerd.configPath, encoding: .utf8) + "\n[pool]\nsize = 1\n"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    @Test func podsClaimWarmVMsAndThePoolRefills() throws {
        let poolConfig = try poolConfig
        defer { drainPool(poolConfig) }
        // An empty pool: this pod boots its own VM, then its shim boots one for the pool.
        let first = containerd.runContainer("pool-first", ["sh", "-c", "ls /sys/class/net"], options: ["--runtime-config-path", poolConfig])
        #expect(first.status == 0, "\(first.output)")
        #expect(!first.output.contains("eth0"), "a pod without a network boots a VM without a NIC: \(first.output)")
        let warm = try #require(awaitReadyEntry(), "the pool got no VM: \(WarmPoolState.entries())")

        let second = containerd.runContainer(
            "pool-second", ["sh", "-c", "cat /sys/class/net/eth0/address; uname -r"],
            options: ["--runtime-config-path", poolConfig])
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.hasPrefix(warm.macAddress + "\n"), "the pod ran in the pool's VM \(warm): \(second.output)")
        #expect(second.output.hasSuffix("-swiftkata\n"))
        #expect(WarmPoolState.awaitGone(warm), "the claimed VM and its tap went with the pod")

        // The second pod's shim refilled the pool with another VM.
        let next = try #require(awaitReadyEntry(), "the pool was not refilled: \(WarmPoolState.entries())")
        #expect(next.domain != warm.domain)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    @Test func killedShimOfAClaimedVMLeavesNothingBehind() throws {
        let poolConfig = try poolConfig
        defer { drainPool(poolConfig) }
        let warm = try fillPool(poolConfig)
        let started = containerd.ctr([
            "run", "-d", "--runtime", "io.containerd.swiftkata.v2", "--runtime-config-path", poolConfig,
            containerd.imageRef, "pool-victim", "sleep", "1000",
        ])
        try #require(started.status == 0, "\(started.output)")
        defer {
            containerd.ctr(["task", "rm", "-f", "pool-victim"])
            containerd.ctr(["container", "rm", "pool-victim"])
        }
        #expect(WarmPoolState.domainRuns(warm.domain), "the pod runs in the claimed VM")
        let shim = try #require(HostLeftovers.processes().first { $0.1.contains("containerd-shim-swiftkata-v2") && $0.1.contains("-id pool-victim") })
        // Wait for the shim's refill to finish first, so only the claimed VM is at stake.
        _ = try #require(awaitReadyEntry(excluding: warm.domain), "the pool was not refilled: \(WarmPoolState.entries())")
        kill(shim.0, SIGKILL)
        // containerd runs `delete`, which finds the claimed VM's names in its identity file.
        #expect(WarmPoolState.awaitGone(warm), "the claimed VM's domain and tap were destroyed")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 15) == [])
    }

    @Test func aWarmVMWhoseAgentDoesNotAnswerIsReplacedByAFreshBoot() throws {
        let poolConfig = try poolConfig
        defer { drainPool(poolConfig) }
        let warm = try fillPool(poolConfig)
        // A frozen guest: QEMU runs (the claim's liveness check passes) but the agent never answers.
        let suspended = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "suspend", warm.domain])
        try #require(suspended.status == 0, "\(suspended.output)")
        // Same pool key (agent settings do not shape the VM), shorter wait for the claimed VM's agent.
        let impatient = "\(containerd.directory)/configuration-pool-impatient.toml"
        let text = try String(contentsOfFile: poolConfig, encoding: .utf8) + "\n[agent]\ndial_timeout_ms = 6000\n"
        try text.write(toFile: impatient, atomically: true, encoding: .utf8)
        let run = containerd.runContainer("pool-frozen", ["sh", "-c", "ls /sys/class/net"], options: ["--runtime-config-path", impatient])
        #expect(run.status == 0, "\(run.output)")
        #expect(!run.output.contains("eth0"), "the pod booted a VM of its own (no pool NIC): \(run.output)")
        #expect(WarmPoolState.awaitGone(warm), "the frozen VM was destroyed")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// Runs one pod with the pool configuration, whose shim then refills the pool; returns the VM.
    func fillPool(_ poolConfig: String) throws -> WarmPoolState.Entry {
        let run = containerd.runContainer("pool-fill", ["true"], options: ["--runtime-config-path", poolConfig])
        try #require(run.status == 0, "\(run.output)")
        return try #require(awaitReadyEntry(), "the pool got no VM: \(WarmPoolState.entries())")
    }

    /// Waits (bounded) for a VM the pool published (`<state_dir>/pool/<key>/<entry>` with its identity).
    func awaitReadyEntry(excluding domain: String? = nil, timeout: TimeInterval = 60) -> WarmPoolState.Entry? {
        poll(timeout: timeout) { WarmPoolState.entries().first { $0.ready && $0.domain != domain } }
    }

    /// The operator's command empties the pool; nothing of it may stay.
    func drainPool(_ poolConfig: String) {
        // A refill may still be booting in a shim that is exiting: wait for the shims to go first.
        _ = pollUntil(timeout: 30) {
            !HostLeftovers.processes().contains { $0.1.contains("containerd-shim-swiftkata-v2") && $0.1.contains(containerd.namespace) }
        }
        let shim = "\(PrivateContainerd.productsDirectory)/containerd-shim-swiftkata-v2"
        let drained = PrivateContainerd.run("/usr/bin/env", ["SWIFTKATA_CONFIG=\(poolConfig)", shim, "drain-pool"])
        #expect(drained.status == 0, "\(drained.output)")
        #expect(WarmPoolState.entries().isEmpty)
        #expect(WarmPoolState.leftovers() == [], "drain-pool left these behind")
    }
}

/// What the warm pool under the default state directory holds, read from the host.
enum WarmPoolState {
    static let root = "/run/swiftkata/pool"

    struct Entry: CustomStringConvertible {
        var path: String
        var ready: Bool
        var domain: String
        var tap: String
        var macAddress: String
        var description: String { "\(path) \(domain) \(tap) \(macAddress)" }
    }

    static func entries() -> [Entry] {
        let keys = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return keys.filter { !$0.hasPrefix(".") }.flatMap { key in
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(key)")) ?? []).sorted().compactMap { name -> Entry? in
                let path = "\(root)/\(key)/\(name)"
                guard let data = FileManager.default.contents(atPath: "\(path)/identity.json"),
                    let identity = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                else { return Entry(path: path, ready: false, domain: "", tap: "", macAddress: "") }
                return Entry(
                    path: path, ready: !name.hasPrefix(".") && identity["qemuPID"] != nil,
                    domain: identity["domainName"] as? String ?? "", tap: identity["tapName"] as? String ?? "",
                    macAddress: identity["macAddress"] as? String ?? "")
            }
        }
    }

    static func domainRuns(_ name: String) -> Bool {
        PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "list", "--name"]).output.split(separator: "\n").contains { $0 == name }
    }

    static func linkExists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "/sys/class/net/\(name)") }

    /// Waits (bounded) until the entry's domain and tap are gone (a pod's VM goes after Shutdown's reply).
    static func awaitGone(_ entry: Entry, timeout: TimeInterval = 15) -> Bool {
        pollUntil(timeout: timeout) { !domainRuns(entry.domain) && !linkExists(entry.tap) }
    }

    /// Pool domains, their QEMU processes and taps that are still there.
    static func leftovers() -> [String] {
        var found = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "list", "--name"]).output
            .split(separator: "\n").filter { $0.hasPrefix("swiftkata_pool-") }.map { "domain \($0)" }
        found += ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).filter { $0.hasPrefix("skpool") }.map { "tap \($0)" }
        return found
    }
}
