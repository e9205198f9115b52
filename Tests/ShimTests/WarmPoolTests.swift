import Foundation
import Hypervisor
@testable import Shim
import SwiftKataConfig
import Testing

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

    @Test func identityRoundTripsAndRejectsForeignNames() throws {
        let directory = NSTemporaryDirectory() + "swiftkata-identity-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let layout = PodLayout(poolEntry: "e", directory: directory)
        try FileManager.default.createDirectory(atPath: layout.vmDirectory, withIntermediateDirectories: true)
        #expect(VMIdentity.load(in: layout) == nil)

        let identity = VMIdentity(domainName: "swiftkata_pool-e", tapName: "skpool123456789", macAddress: "52:54:00:01:02:03",
                                  libvirtURI: "qemu:///system", qemuPID: 42, vsockCID: nil)
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
            VMPlan(configuration: configuration, control: VMControl(helper: "/bin/true", uri: configuration.hypervisor.libvirtURI),
                   image: .rootDisk(path: "\(directory)/rootfs.img"), accelerator: .tcg, transport: .virtioSerial)
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
