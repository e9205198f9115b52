import Foundation
import Hypervisor
import Logging
import SwiftKataConfig
import Testing

@testable import Shim

/// The warm pool's naming, identity files and key, without VMs (the end-to-end tests boot them).
@Suite struct WarmPoolTests {
    @Test func entryIDsSortByAgeAndCarryTheirCreationTime() {
        let older = WarmPool.newEntryID(now: 1_764_400_000)
        let newer = WarmPool.newEntryID(now: 1_764_400_001)
        #expect(older.count == 19 && older.split(separator: "-").map(\.count) == [10, 8])
        #expect(older < newer)
        #expect(WarmPool.createdAt(older) == 1_764_400_000)
        #expect(WarmPool.createdAt("garbage") == 0)
    }

    @Test func poolVMsGetLocalMACsAndNamesNoPodCanHave() {
        for _ in 0..<20 {
            let mac = WarmPool.randomMACAddress()
            #expect(mac.hasPrefix("52:54:00:") && mac.count == 17, "\(mac)")
        }
        let pooled = VMDescription.domainName(for: .warmPool(entryID: "006b0bf72a-f6ca7351"))
        #expect(pooled == "swiftkata_pool-006b0bf72a-f6ca7351")
        // Pod domains are swiftkata-<namespace>-<id>; no namespace can make one start like a pool's.
        #expect(!VMDescription.domainName(for: .init(podID: "x", namespace: "pool")).hasPrefix(VMDescription.warmPoolDomainPrefix))
    }

    /// `a-b`/`c` and `a`/`b-c` read alike; their domains must not, or one pod's start replaces the other's VM.
    @Test func podDomainNamesAreUniqueWhereTheReadablePartIsNot() {
        let first = VMDescription.domainName(for: .init(podID: "c", namespace: "a-b"))
        let second = VMDescription.domainName(for: .init(podID: "b-c", namespace: "a"))
        #expect(first.hasPrefix("swiftkata-a-b-c-") && second.hasPrefix("swiftkata-a-b-c-"))
        #expect(first != second)
    }

    @Test func identityRoundTripsAndRejectsForeignNames() throws {
        let directory = NSTemporaryDirectory() + "swiftkata-identity-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let layout = PodLayout(poolEntry: "e", directory: directory)
        try FileManager.default.createDirectory(atPath: layout.vmDirectory, withIntermediateDirectories: true)
        #expect(VMIdentity.load(in: layout) == nil)

        let identity = VMIdentity(
            domainName: "swiftkata_pool-e", tapName: "skpool123456789", macAddress: "52:54:00:01:02:03",
            qemuPID: 42, vsockCID: nil)
        try identity.save(in: layout)
        #expect(VMIdentity.load(in: layout) == identity)

        // A damaged file must not make `delete` destroy some other domain or link.
        for text in [#"{"domainName":"production-db"}"#, #"{"domainName":"swiftkata_pool-e","tapName":"eth0/../x"}"#, "not json"] {
            try text.write(toFile: VMIdentity.path(in: layout), atomically: true, encoding: .utf8)
            #expect(VMIdentity.load(in: layout) == nil, "\(text)")
        }
    }

    @Test func poolKeyFollowsWhatShapesTheVM() throws {
        let directory = NSTemporaryDirectory() + "swiftkata-poolkey-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let kernel = "\(directory)/vmlinux"
        try Data("kernel".utf8).write(to: URL(fileURLWithPath: kernel))
        var configuration = Configuration()
        configuration.hypervisor.kernel = kernel
        let plan = { (configuration: Configuration) in
            VMPlan(
                configuration: configuration, control: VMControl(helper: "/bin/true", uri: configuration.hypervisor.libvirtURI),
                image: .rootDisk(path: "\(directory)/rootfs.img"), accelerator: .tcg, transport: .virtioSerial,
                kernel: configuration.hypervisor.kernel)
        }
        let key = plan(configuration).poolKey
        #expect(key.count == 16)
        #expect(plan(configuration).poolKey == key, "stable for one configuration")

        var pod = configuration
        pod.pool.size = 3
        pod.runtime.debug = true
        #expect(plan(pod).poolKey == key, "settings that do not shape the VM keep the pool")
        var bigger = configuration
        bigger.hypervisor.memoryMiB = 512
        #expect(plan(bigger).poolKey != key)
        // A reinstalled kernel (same path, new file) starts a new pool.
        try FileManager.default.removeItem(atPath: kernel)
        try Data("kernel, rebuilt".utf8).write(to: URL(fileURLWithPath: kernel))
        #expect(plan(configuration).poolKey != key)
    }
}

/// The pool's bookkeeping on a real directory tree, with a VM helper that does nothing (`/bin/true`).
@Suite struct WarmPoolDirectoryTests {
    let state = NSTemporaryDirectory() + "swiftkata-pool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    func pool(size: Int) -> WarmPool {
        var configuration = Configuration()
        configuration.runtime.stateDirectory = state
        configuration.pool.size = size
        let plan = VMPlan(
            configuration: configuration, control: VMControl(helper: "/bin/true", uri: "qemu:///system"),
            image: .rootDisk(path: "\(state)/rootfs.img"), accelerator: .tcg, transport: .virtioSerial,
            kernel: configuration.hypervisor.kernel)
        return WarmPool(plan: plan)
    }

    func makeEntry(_ path: String, identity: VMIdentity?) throws {
        let layout = PodLayout(poolEntry: "x", directory: path)
        try FileManager.default.createDirectory(atPath: layout.vmDirectory, withIntermediateDirectories: true)
        try identity?.save(in: layout)
    }

    @Test func refillReservationsDrainWhatIsStale() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let pool = pool(size: 2)
        let now = Int(time(nil))
        // A refill that died while its VM booted (3 minutes ago), and one still booting now.
        let dead = "\(pool.directory)/.booting-\(WarmPool.newEntryID(now: now - 180))"
        let live = "\(pool.directory)/.booting-\(WarmPool.newEntryID(now: now))"
        try makeEntry(dead, identity: VMIdentity(domainName: "swiftkata_pool-dead"))
        try makeEntry(live, identity: nil)
        // Another configuration's pool, unused for 20 minutes, and one used a minute ago.
        let stale = "\(pool.root)/0123456789abcdef"
        let recent = "\(pool.root)/fedcba9876543210"
        try makeEntry("\(stale)/\(WarmPool.newEntryID(now: now - 1200))", identity: VMIdentity(domainName: "swiftkata_pool-stale"))
        try makeEntry("\(recent)/\(WarmPool.newEntryID(now: now - 60))", identity: VMIdentity(domainName: "swiftkata_pool-recent"))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -1200)], ofItemAtPath: stale)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)], ofItemAtPath: recent)

        let reserved = try pool.reserveEntries(logger: Logger(label: "test"))
        #expect(reserved.count == 1, "size 2 with one VM still booting: one more")
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(reserved.allSatisfy { FileManager.default.fileExists(atPath: "\(pool.directory)/.booting-\($0)") })
        #expect(!FileManager.default.fileExists(atPath: stale), "a pool unused for 10 minutes is drained")
        #expect(FileManager.default.fileExists(atPath: recent))
        // Reserved VMs count: another refill right now adds nothing.
        #expect(try pool.reserveEntries(logger: Logger(label: "test")).isEmpty)
    }

    @Test func claimSkipsVMsThatNoLongerRunAndNeedsAFreePodDirectory() throws {
        defer { try? FileManager.default.removeItem(atPath: state) }
        let pool = pool(size: 1)
        let pod = PodLayout(stateDirectory: state, namespace: "default", podID: "p")
        #expect(pool.claim(into: pod, logger: Logger(label: "test")) == nil, "an empty pool")

        // A published VM whose QEMU is gone (pid 0x7fffffff does not exist): discarded, not claimed.
        let gone = "\(pool.directory)/\(WarmPool.newEntryID(now: Int(time(nil))))"
        try makeEntry(gone, identity: VMIdentity(domainName: "swiftkata_pool-gone", qemuPID: Int32.max))
        #expect(pool.claim(into: pod, logger: Logger(label: "test")) == nil)
        #expect(!FileManager.default.fileExists(atPath: gone) && !FileManager.default.fileExists(atPath: pod.directory))

        // A pod directory left by a shim that died: the pod boots its own VM, the pool keeps its VM.
        let waiting = "\(pool.directory)/\(WarmPool.newEntryID(now: Int(time(nil))))"
        try makeEntry(waiting, identity: VMIdentity(domainName: "swiftkata_pool-waiting", qemuPID: getpid()))
        try FileManager.default.createDirectory(atPath: pod.directory, withIntermediateDirectories: true)
        #expect(pool.claim(into: pod, logger: Logger(label: "test")) == nil)
        #expect(FileManager.default.fileExists(atPath: waiting))
    }
}
