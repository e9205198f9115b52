import AgentAPI
import Foundation
import Hypervisor
import SwiftKataOS
import TTRPC
import TTRPCTestSupport

/// Boots the guest kernel + image with qemu-system-x86_64 directly (no libvirt) and connects to the
/// agent over the virtio-serial port, bound on the host to a unix socket.
final class QEMUGuest: Sendable {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// The guest artifacts, from SWIFTKATA_KERNEL / SWIFTKATA_IMAGE (set by `make test`).
    static func artifacts() throws -> (kernel: String, image: String, release: String) {
        let env = ProcessInfo.processInfo.environment
        guard let kernel = env["SWIFTKATA_KERNEL"], let image = env["SWIFTKATA_IMAGE"] else {
            throw Failure(description: "SWIFTKATA_KERNEL and SWIFTKATA_IMAGE are not set: run `make test` (it builds the guest kernel and image first)")
        }
        let releaseFile = URL(fileURLWithPath: kernel).deletingLastPathComponent().appendingPathComponent("kernel-release")
        let release = (try? String(contentsOf: releaseFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return (kernel, image, release)
    }

    let directory: TempDirectory
    let process: Process
    let agent: TTRPCClient
    let bootStarted: ContinuousClock.Instant

    var consoleLog: String { (try? String(contentsOfFile: directory.file("console.log"), encoding: .utf8)) ?? "" }
    var agentClient: Swiftkata_Agent_V1_AgentClient { Swiftkata_Agent_V1_AgentClient(agent) }

    /// Boots a VM; `shared` is a host directory exported over 9p with tag `shared` when given;
    /// `extraArguments` go to QEMU as they are (e.g. a NIC).
    /// The initramfs form of the guest image, built next to the root disk (guest-agent/build-image.sh).
    static func initramfsImage() throws -> String {
        let path = URL(fileURLWithPath: try artifacts().image).deletingLastPathComponent().appendingPathComponent("swiftkata-initrd.img").path
        guard FileManager.default.fileExists(atPath: path) else { throw Failure(description: "\(path) is missing: run `make guest`") }
        return path
    }

    /// `image` overrides $SWIFTKATA_IMAGE (the ext4 root disk), e.g. with `initramfsImage()`.
    static func boot(
        memoryMiB: Int = 256, image: String? = nil, shared: String? = nil, extraKernelArgs: String = "", extraArguments: [String] = []
    ) async throws -> QEMUGuest {
        let (bzImage, defaultImage, _) = try artifacts()
        let image = image ?? defaultImage
        // The uncompressed vmlinux boots 40–100 ms faster under TCG (QEMU's PVH entry); see guest-kernel-config/README.md.
        let vmlinux = URL(fileURLWithPath: bzImage).deletingLastPathComponent().appendingPathComponent("vmlinux").path
        let kernel = FileManager.default.fileExists(atPath: vmlinux) ? vmlinux : bzImage
        let directory = TempDirectory("swiftkata-vm")
        let socket = directory.file("agent.sock")
        let guestImage = try GuestImage.load(path: image)
        var arguments =
            [
                "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", "\(memoryMiB)", "-smp", "1",
                "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                "-kernel", kernel,
            ] + guestImage.qemuArguments + [
                "-append", guestImage.kernelCommandLine("console=ttyS0 quiet panic=-1 random.trust_cpu=on noapictimer acpi=noirq \(extraKernelArgs)"),
                "-serial", "file:\(directory.file("console.log"))",
                "-chardev", "socket,id=agent,path=\(socket),server=on,wait=off",
                "-device", "virtio-serial-pci,id=serial0",
                "-device", "virtserialport,bus=serial0.0,chardev=agent,name=\(AgentProtocol.serialPortName)",
            ]
        if let shared {
            arguments += [
                "-fsdev", "local,id=shared,path=\(shared),security_model=none",
                "-device", "virtio-9p-pci,fsdev=shared,mount_tag=shared",
            ]
        }
        arguments += extraArguments
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let started = ContinuousClock.now
        try process.run()
        do {
            let client = try await connect(socket: socket, process: process)
            return QEMUGuest(directory: directory, process: process, agent: client, bootStarted: started)
        } catch {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            directory.remove()
            throw error
        }
    }

    private init(directory: TempDirectory, process: Process, agent: TTRPCClient, bootStarted: ContinuousClock.Instant) {
        self.directory = directory
        self.process = process
        self.agent = agent
        self.bootStarted = bootStarted
    }

    /// QEMU creates the socket before the guest runs; connect as soon as it exists. The deadline is
    /// generous: with every suite booting guests at once on two cores, QEMU itself starts slowly.
    private static func connect(socket: String, process: Process) async throws -> TTRPCClient {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw Failure(description: "QEMU exited with status \(process.terminationStatus)") }
            if let client = try? await TTRPCClient.connect(unixSocketPath: socket) { return client }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw Failure(description: "QEMU did not create \(socket)")
    }

    /// Calls Health until the agent answers (the first answer is "agent ready").
    func waitForAgent(timeout: Duration = .seconds(60)) async throws -> (Swiftkata_Agent_V1_HealthResponse, Duration) {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        // Requests written before the agent opened its port wait in the socket; a call that timed out
        // leaves a late reply that the client drops, so retrying on the same connection is safe.
        while ContinuousClock.now < deadline {
            do {
                let health = try await agentClient.health(.init(), timeout: .seconds(2))
                return (health, ContinuousClock.now - bootStarted)
            } catch {
                lastError = error
                guard process.isRunning else { break }
            }
        }
        throw Failure(description: "agent not ready: \(String(describing: lastError)); console:\n\(consoleLog)")
    }

    /// Opens a new connection to the agent's port (after `agent` was closed, the host end is free).
    func connectAgent() async throws -> TTRPCClient {
        try await TTRPCClient.connect(unixSocketPath: directory.file("agent.sock"))
    }

    /// CPU time QEMU has used so far (utime + stime from /proc/<pid>/stat).
    func qemuCPUTime() throws -> Duration {
        guard let milliseconds = ProcessCPUTime.milliseconds(pid: process.processIdentifier) else {
            throw Failure(description: "cannot read /proc/\(process.processIdentifier)/stat")
        }
        return .milliseconds(Int64(milliseconds))
    }

    func shutdown() async {
        await agent.close()
        // SIGKILL: QEMU started from here inherits a signal mask with SIGTERM blocked, and the VM is
        // disposable anyway.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        directory.remove()
    }
}
