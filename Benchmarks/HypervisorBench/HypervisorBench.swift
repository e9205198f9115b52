import AgentAPI
import AgentClient
import Foundation
import Hypervisor
import HypervisorLibvirt
import NIOPosix

/// Domain-create call → agent ready, through libvirt, vs a bare `qemu-system-x86_64` boot of the
/// same kernel and image with the same devices, measured alternately in one run: what libvirt adds.
///
/// Usage: hypervisor-bench VMLINUX IMAGE [RUNS]
@main
struct HypervisorBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 3 else {
            print("usage: hypervisor-bench VMLINUX IMAGE [RUNS]")
            exit(2)
        }
        let kernel = arguments[1], image = arguments[2]
        let runs = arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5
        let cmdline = "console=ttyS0 quiet noapictimer no_timer_check acpi=noirq random.trust_cpu=on tsc=reliable panic=-1"
        let libvirt = try LibvirtConnection()
        let guestImage = try GuestImage.load(path: image)
        var bare: [Double] = [], viaLibvirt: [Double] = [], createCall: [Double] = []
        for run in 0..<runs {
            let directory = "/tmp/swiftkata-hvbench-\(getpid())-\(run)"
            try FileManager.default.createDirectory(atPath: "\(directory)/shared", withIntermediateDirectories: true)
            chmod(directory, 0o777)
            defer { try? FileManager.default.removeItem(atPath: directory) }

            // Bare QEMU, the devices libvirt would give the domain.
            let qemu = Process()
            qemu.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
            qemu.arguments =
                [
                    "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", "256", "-smp", "1",
                    "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                    "-kernel", kernel,
                ] + guestImage.qemuArguments + [
                    "-append", guestImage.kernelCommandLine(cmdline),
                    "-serial", "file:\(directory)/bare-console.log",
                    "-fsdev", "local,id=shared,path=\(directory)/shared,security_model=passthrough",
                    "-device", "virtio-9p-pci,fsdev=shared,mount_tag=swiftkata",
                    "-chardev", "socket,id=agent,path=\(directory)/bare.sock,server=on,wait=off",
                    "-device", "virtio-serial-pci,id=serial0",
                    "-device", "virtserialport,bus=serial0.0,chardev=agent,name=\(AgentProtocol.serialPortName)",
                    "-device", "virtio-rng-pci",
                ]
            qemu.standardOutput = FileHandle.nullDevice
            qemu.standardError = FileHandle.nullDevice
            let bareStart = ContinuousClock.now
            try qemu.run()
            try await waitForAgent(socket: "\(directory)/bare.sock")
            bare.append(seconds(ContinuousClock.now - bareStart))
            kill(qemu.processIdentifier, SIGKILL)
            qemu.waitUntilExit()

            // The same VM as a libvirt transient domain, created through the C API.
            var vm = VMDescription(
                owner: .init(podID: "hvbench-\(getpid())-\(run)", namespace: "bench"), accelerator: .tcg,
                kernel: kernel, image: guestImage, kernelCommandLine: cmdline,
                agentChannel: .virtioSerial(socketPath: "\(directory)/agent.sock", name: AgentProtocol.serialPortName),
                consoleLog: "\(directory)/console.log")
            vm.sharedFilesystem = .ninep(hostPath: "\(directory)/shared", tag: "swiftkata")
            let xml = try DomainXML.render(vm)
            let start = ContinuousClock.now
            let name = try libvirt.createTransientDomain(xml: xml)
            createCall.append(seconds(ContinuousClock.now - start))
            try await waitForAgent(socket: "\(directory)/agent.sock")
            viaLibvirt.append(seconds(ContinuousClock.now - start))
            try libvirt.destroyDomain(named: name)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        print("TCG, machine pc, same kernel, image and devices; \(runs) runs each, median (min), ms")
        print(String(format: "  bare qemu exec -> agent Health reply         %6.0f (%4.0f)", median(bare) * 1000, bare.min()! * 1000))
        print(String(format: "  libvirt create call -> agent Health reply    %6.0f (%4.0f)", median(viaLibvirt) * 1000, viaLibvirt.min()! * 1000))
        print(String(format: "    of which virDomainCreateXML returned after %6.0f (%4.0f)", median(createCall) * 1000, createCall.min()! * 1000))
        print(String(format: "  what libvirt adds                            %6.0f", (median(viaLibvirt) - median(bare)) * 1000))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Connects once the socket exists and calls Health until the agent answers.
    static func waitForAgent(socket: String) async throws {
        _ = try await AgentReadiness.waitForHealth(socketPath: socket, deadline: .now + .seconds(60)).get()
    }
}
