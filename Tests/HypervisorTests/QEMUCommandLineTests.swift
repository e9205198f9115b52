import Hypervisor
import Testing

/// The KVM probe's QEMU command line comes from the same description as a pod's domain XML.
@Suite("QEMU command line")
struct QEMUCommandLineTests {
    static let serial = VMDescription.AgentChannel.virtioSerial(socketPath: "/tmp/probe/agent.sock", name: "io.swiftkata.agent")

    @Test func carriesTheDescribedMachineAndDevices() throws {
        var vm = DomainXMLTests.base(.kvm, channel: Self.serial)
        vm.vcpus = 2
        vm.memoryMiB = 512
        let arguments = try QEMUCommandLine.arguments(for: vm)
        let xml = try DomainXML.render(vm)
        let joined = arguments.joined(separator: " ")
        #expect(arguments.first == vm.emulator)
        #expect(joined.contains("-accel kvm -cpu host -m 512 -smp 2"))
        #expect(xml.contains("<memory unit='MiB'>512</memory>") && xml.contains("<vcpu>2</vcpu>"))
        let append = try #require(arguments.firstIndex(of: "-append"))
        #expect(arguments[append + 1] == vm.image.kernelCommandLine(vm.kernelCommandLine))
        #expect(xml.contains("<cmdline>\(vm.image.kernelCommandLine(vm.kernelCommandLine))</cmdline>"))
        #expect(joined.contains("-serial file:\(vm.consoleLog)"))
        #expect(joined.contains("name=io.swiftkata.agent") && joined.contains("path=/tmp/probe/agent.sock,server=on"))
        #expect(joined.contains("virtio-rng-pci") && xml.contains("<rng model='virtio'>"))
        #expect(joined.contains("free-page-reporting=on") && xml.contains("freePageReporting='on'"))
        #expect(joined.contains("file=/usr/share/swiftkata/swiftkata-rootfs.img,if=none,id=guestroot,format=raw,readonly=on"))
    }

    @Test func tcgGetsItsTranslationCacheAndEmulatedCPU() throws {
        var vm = DomainXMLTests.base(.tcg, channel: Self.serial)
        vm.translationCacheMiB = 32
        vm.freePageReporting = false
        let joined = try QEMUCommandLine.arguments(for: vm).joined(separator: " ")
        #expect(joined.contains("-accel tcg,tb-size=32 -cpu max"))
        #expect(!joined.contains("virtio-balloon"))
    }

    @Test func whatOnlyLibvirtCanSetUpIsRefused() {
        var virtiofs = DomainXMLTests.base(.kvm, channel: Self.serial)
        virtiofs.sharedFilesystem = .virtioFS(hostPath: "/run/x/shared", tag: "swiftkata")
        #expect(throws: VMDescriptionError.self) { try QEMUCommandLine.arguments(for: virtiofs) }
        #expect(throws: VMDescriptionError.self) { try QEMUCommandLine.arguments(for: DomainXMLTests.base(.kvm, channel: .vsock)) }
    }

    @Test func commasInPathsAreDoubled() throws {
        var vm = DomainXMLTests.base(.kvm, channel: .virtioSerial(socketPath: "/tmp/a,b/agent.sock", name: "io.swiftkata.agent"))
        vm.sharedFilesystem = .ninep(hostPath: "/run/x,y/shared", tag: "swiftkata")
        let joined = try QEMUCommandLine.arguments(for: vm).joined(separator: " ")
        #expect(joined.contains("path=/tmp/a,,b/agent.sock"))
        #expect(joined.contains("path=/run/x,,y/shared"))
    }
}
