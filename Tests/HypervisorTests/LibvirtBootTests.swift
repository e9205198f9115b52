import AgentAPI
import AgentClient
import Foundation
import Hypervisor
import HypervisorLibvirt
import TTRPC
import Testing

/// Real libvirtd + QEMU booting the real guest kernel and agent image through the libvirt C API.
@Suite("libvirt boot", .serialized)
struct LibvirtBootTests {
    struct Setup {
        let directory: String
        let vm: VMDescription

        /// Removes the test's directory and libvirt's logs of its domain.
        func removeLeftovers() {
            try? FileManager.default.removeItem(atPath: directory)
            DomainLogs.remove(domain: VMDescription.domainName(for: vm.owner), in: "/var/log/libvirt/qemu")
        }
    }

    static func setup(pod: String) throws -> Setup {
        let env = ProcessInfo.processInfo.environment
        guard let bzImage = env["SWIFTKATA_KERNEL"], let image = env["SWIFTKATA_IMAGE"] else {
            throw LibvirtError(operation: "test setup", message: "SWIFTKATA_KERNEL and SWIFTKATA_IMAGE are not set: run `make test`", code: -1)
        }
        let kernel = URL(fileURLWithPath: bzImage).deletingLastPathComponent().appendingPathComponent("vmlinux").path
        let directory = "/tmp/swiftkata-libvirt-\(pod)"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: "\(directory)/shared", withIntermediateDirectories: true)
        // QEMU runs as libvirt's unprivileged user: it must be able to create the agent socket here.
        chmod(directory, 0o777)
        var vm = VMDescription(
            owner: .init(podID: pod, namespace: "swiftkata-libvirt-test"), accelerator: .tcg, kernel: kernel, image: try GuestImage.load(path: image),
            kernelCommandLine: "console=ttyS0 quiet noapictimer acpi=noirq random.trust_cpu=on tsc=reliable panic=-1",
            agentChannel: .virtioSerial(socketPath: "\(directory)/agent.sock", name: AgentProtocol.serialPortName),
            consoleLog: "\(directory)/console.log")
        vm.sharedFilesystem = .ninep(hostPath: "\(directory)/shared", tag: "swiftkata")
        return Setup(directory: directory, vm: vm)
    }

    static func health(socket: String) async throws -> Swiftkata_Agent_V1_HealthResponse {
        try await AgentReadiness.waitForHealth(socketPath: socket, deadline: .now + .seconds(60)).get()
    }

    @Test func bootReachAgentKillQEMUAndNothingIsLeft() async throws {
        let libvirt = try LibvirtConnection()
        let setup = try Self.setup(pod: "boot-\(getpid())")
        let name = VMDescription.domainName(for: setup.vm.owner)
        defer { setup.removeLeftovers() }

        let created = ContinuousClock.now
        _ = try libvirt.createTransientDomain(xml: try DomainXML.render(setup.vm))
        let health = try await Self.health(socket: "\(setup.directory)/agent.sock")
        print("libvirt create -> agent ready: \(ContinuousClock.now - created)")
        #expect(health.kernelRelease.hasSuffix("-swiftkata"))
        #expect(try libvirt.swiftkataDomains().contains(name))
        // libvirt took the CPUID-word readback (it says so by tainting the domain in its log).
        let domainLog = (try? String(contentsOfFile: "/var/log/libvirt/qemu/\(name).log", encoding: .utf8)) ?? ""
        #expect(domainLog.contains("is tainted: custom-hypervisor-feature"), "\(domainLog.suffix(2000))")

        // A QEMU killed with SIGKILL is reported by a lifecycle event within a second.
        let events = libvirt.events(for: name)
        let qemu = try #require(libvirt.qemuPID(ofDomain: name))
        let killed = ContinuousClock.now
        #expect(kill(qemu, SIGKILL) == 0)
        var iterator = events.makeAsyncIterator()
        var stopped: DomainLifecycleEvent?
        while let event = await iterator.next() {
            if case .stopped = event { stopped = event; break }
        }
        let latency = ContinuousClock.now - killed
        print("SIGKILL -> lifecycle event \(String(describing: stopped)) after \(latency)")
        #expect(stopped != nil)
        // The pidfd reports at once; libvirt's own event comes only after its clean-up. The bound is
        // loose: other suites boot VMs on the same 2 cores meanwhile.
        #expect(latency < .seconds(5))
        // libvirt's own event follows once libvirtd has cleaned up; then nothing may be left.
        var libvirtStopped: DomainLifecycleEvent?
        while let event = await iterator.next() {
            if case .stopped = event { libvirtStopped = event; break }
        }
        print("libvirt's own event: \(String(describing: libvirtStopped)) after \(ContinuousClock.now - killed)")

        // Nothing left: no domain, no QEMU.
        #expect(try !libvirt.swiftkataDomains().contains(name))
        #expect(kill(qemu, 0) != 0)
        try libvirt.destroyDomain(named: name)  // idempotent once gone
    }

    @Test func destroyStopsTheDomainAndClearErrorsForBadInput() async throws {
        let libvirt = try LibvirtConnection()
        let setup = try Self.setup(pod: "destroy-\(getpid())")
        defer { setup.removeLeftovers() }
        let name = try libvirt.createTransientDomain(xml: try DomainXML.render(setup.vm))
        let qemu = try #require(libvirt.qemuPID(ofDomain: name))
        try libvirt.destroyDomain(named: name)
        #expect(try !libvirt.swiftkataDomains().contains(name))
        #expect(kill(qemu, 0) != 0)

        var missingKernel = setup.vm
        missingKernel.kernel = "/nonexistent/vmlinux"
        let error = #expect(throws: LibvirtError.self) { try libvirt.createTransientDomain(xml: try DomainXML.render(missingKernel)) }
        #expect(error?.description.contains("/nonexistent/vmlinux") == true)
        #expect(try !libvirt.swiftkataDomains().contains(name))

        let badURI = #expect(throws: LibvirtError.self) { try LibvirtConnection(uri: "qemu:///nonsense") }
        #expect(badURI?.description.hasPrefix("connecting to libvirt at qemu:///nonsense") == true)
    }

    @Test func terminationKillsQEMUAndReturnsOnceLibvirtRemovedTheDomain() async throws {
        let libvirt = try LibvirtConnection()
        let setup = try Self.setup(pod: "terminate-\(getpid())")
        defer { setup.removeLeftovers() }
        let name = try libvirt.createTransientDomain(xml: try DomainXML.render(setup.vm))
        let qemu = try #require(libvirt.qemuPID(ofDomain: name))
        // Another driver's domain of that name is none of its business: nothing is killed.
        #expect(DomainTermination.kill(domain: name, uri: "qemu:///session", timeoutMilliseconds: 10_000) == .notRunning)
        #expect(kill(qemu, 0) == 0)
        let started = ContinuousClock.now
        #expect(DomainTermination.kill(domain: name, uri: "qemu:///system", timeoutMilliseconds: 10_000) == .removed)
        print("DomainTermination.kill: \(ContinuousClock.now - started)")
        // Gone from libvirt, QEMU dead, libvirt's state files removed: the destroy that follows is a no-op.
        #expect(kill(qemu, 0) != 0)
        #expect(access("/run/libvirt/qemu/\(name).xml", F_OK) != 0)
        #expect(try !libvirt.swiftkataDomains().contains(name))
        try libvirt.destroyDomain(named: name)
        // A domain that does not run here: nothing to do, and no wait.
        #expect(DomainTermination.kill(domain: name, uri: "qemu:///system", timeoutMilliseconds: 10_000) == .notRunning)
        #expect(DomainTermination.kill(domain: "swiftkata-no-such-domain", uri: "qemu:///system", timeoutMilliseconds: 10_000) == .notRunning)
    }
}
