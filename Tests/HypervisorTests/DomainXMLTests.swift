import Foundation
import Hypervisor
import Testing

/// Domain XML for each option combination: compared with golden files and validated against
/// libvirt's own schema with `virt-xml-validate` (libvirt-clients).
@Suite("Domain XML")
struct DomainXMLTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func base(_ accelerator: VMDescription.Accelerator, channel: VMDescription.AgentChannel) -> VMDescription {
        VMDescription(
            owner: .init(podID: "3f2a9c", namespace: "k8s.io"), accelerator: accelerator,
            kernel: "/usr/share/swiftkata/vmlinux", image: .rootDisk(path: "/usr/share/swiftkata/swiftkata-rootfs.img"),
            kernelCommandLine: "console=ttyS0 quiet noapictimer acpi=noirq random.trust_cpu=on panic=-1",
            agentChannel: channel, consoleLog: "/run/swiftkata/3f2a9c/console.log")
    }

    static let cases: [(String, VMDescription)] = {
        var tcg9p = base(.tcg, channel: .virtioSerial(socketPath: "/run/swiftkata/3f2a9c/agent.sock", name: "io.swiftkata.agent"))
        tcg9p.sharedFilesystem = .ninep(hostPath: "/run/swiftkata/3f2a9c/shared", tag: "swiftkata")
        var tcgVirtiofsNet = base(.tcg, channel: .vsock)
        tcgVirtiofsNet.sharedFilesystem = .virtioFS(hostPath: "/run/swiftkata/3f2a9c/shared", tag: "swiftkata")
        tcgVirtiofsNet.tap = .init(device: "tap0_kata", macAddress: "02:42:ac:11:00:02")
        tcgVirtiofsNet.translationCacheMiB = 32
        var kvmPlain = base(.kvm, channel: .vsock)
        kvmPlain.vcpus = 4
        kvmPlain.memoryMiB = 2048
        kvmPlain.machine = "q35"
        kvmPlain.freePageReporting = false
        kvmPlain.translationCacheMiB = 32  // ignored: KVM has no translation cache
        kvmPlain.cpuReadback = .perFeature
        kvmPlain.image = .initrd(path: "/usr/share/swiftkata/swiftkata-initrd.img")
        // A VM that grows: 8 vCPU threads with 1 booted, 256 MiB plus a virtio-mem device up to 4 GiB.
        var tcgGrowing = tcgVirtiofsNet
        tcgGrowing.hotplug = .init(maxVCPUs: 8, maxMemoryMiB: 4096)
        return [
            ("tcg-9p-serial", tcg9p), ("tcg-virtiofs-vsock-tap", tcgVirtiofsNet), ("kvm-q35-vsock", kvmPlain),
            ("tcg-virtiofs-hotplug", tcgGrowing),
        ]
    }()

    @Test(arguments: cases.map(\.0))
    func matchesGoldenAndLibvirtSchema(_ name: String) throws {
        let vm = Self.cases.first { $0.0 == name }!.1
        let xml = try DomainXML.render(vm)
        let golden = Self.goldenDirectory.appendingPathComponent("\(name).xml")
        if ProcessInfo.processInfo.environment["SWIFTKATA_UPDATE_GOLDEN"] == "1" {
            try xml.write(to: golden, atomically: true, encoding: .utf8)
        }
        #expect(xml == (try String(contentsOf: golden, encoding: .utf8)))

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-domain-\(name)-\(getpid()).xml")
        try xml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let validate = Process()
        validate.executableURL = URL(fileURLWithPath: "/usr/bin/virt-xml-validate")
        validate.arguments = [file.path, "domain"]
        let output = Pipe()
        validate.standardOutput = output
        validate.standardError = output
        try validate.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        validate.waitUntilExit()
        #expect(validate.terminationStatus == 0, "\(text)")
    }

    @Test func aGrowingVMBootsItsSizeOfItsVCPUsAndKeepsTCGsCacheForTheBootedOnes() throws {
        var vm = Self.base(.tcg, channel: .vsock)
        vm.vcpus = 2
        vm.memoryMiB = 300
        vm.translationCacheMiB = 32
        vm.hotplug = .init(maxVCPUs: 8, maxMemoryMiB: 1000)
        let xml = try DomainXML.render(vm)
        #expect(xml.contains("<vcpu>8</vcpu>"))
        #expect(xml.contains(" maxcpus=2 memory_hotplug.online_policy=auto-movable "))
        #expect(xml.contains("<tb-cache unit='MiB'>44</tb-cache>"), "32 MiB plus a 2 MiB region for each of 6 offline vCPUs")
        // The device is whole 128 MiB guest memory blocks: 700 MiB → 640.
        #expect(xml.contains("<size unit='MiB'>640</size>"))
        #expect(xml.contains("<maxMemory slots='1' unit='MiB'>940</maxMemory>"))
        #expect(throws: VMDescriptionError.self) {
            vm.hotplug = .init(maxVCPUs: 1, maxMemoryMiB: 1000)
            _ = try DomainXML.render(vm)
        }
    }

    @Test func textIsEscaped() throws {
        var vm = Self.base(.tcg, channel: .vsock)
        vm.kernelCommandLine = "console=ttyS0 x='<&>\""
        let xml = try DomainXML.render(vm)
        #expect(xml.contains("<cmdline>console=ttyS0 x=&apos;&lt;&amp;&gt;&quot; root=/dev/vda ro rootfstype=ext4</cmdline>"))
    }

    @Test func domainNameAndMetadataIdentifyThePod() throws {
        let xml = try DomainXML.render(Self.base(.tcg, channel: .vsock))
        #expect(xml.contains("<name>swiftkata-k8s.io-3f2a9c-b40c2a86f3438266</name>"))
        #expect(xml.contains("<swiftkata:id>3f2a9c</swiftkata:id>"))
        #expect(xml.contains("<swiftkata:namespace>k8s.io</swiftkata:namespace>"))
    }

    @Test(arguments: [
        ("pod id", "pod id: \"../x\" is not [A-Za-z0-9_.-]{1,64}"),
        ("vcpus", "vcpus: 0 is outside 1...64"),
        ("memory", "memory: 16 MiB is outside 64 MiB...1 TiB"),
        ("kernel", "kernel: vmlinux is not an absolute path"),
        ("mac", "tap mac address: 02:42 is not aa:bb:cc:dd:ee:ff"),
        ("tag", "shared filesystem tag: \"\" must have 1 to 36 bytes"),
    ])
    func badDescriptionsAreRejected(_ what: String, _ message: String) {
        var vm = Self.base(.tcg, channel: .vsock)
        switch what {
        case "pod id": vm.owner.podID = "../x"
        case "vcpus": vm.vcpus = 0
        case "memory": vm.memoryMiB = 16
        case "kernel": vm.kernel = "vmlinux"
        case "mac": vm.tap = .init(device: "tap0", macAddress: "02:42")
        default: vm.sharedFilesystem = .ninep(hostPath: "/srv", tag: "")
        }
        let error = #expect(throws: VMDescriptionError.self) { try DomainXML.render(vm) }
        #expect(error?.description == message)
    }
}
