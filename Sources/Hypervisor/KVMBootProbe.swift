import AgentAPI
import Foundation
import TTRPC

/// The real KVM test: boot the configured kernel and image under KVM with QEMU and wait (briefly)
/// for the agent's Health reply. Reading CPU flags is not enough: nested KVM can create a VM whose
/// Linux guest then hangs right after decompression.
public enum KVMBootProbe {
    public static func boot(kernel: String, image: String, timeout: Duration = .seconds(5)) async -> (ok: Bool, detail: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-kvm-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return (false, "cannot create \(directory): \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = "\(directory)/agent.sock"
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        qemu.arguments = [
            "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-kernel", kernel, "-initrd", image,
            "-append", "console=ttyS0 quiet acpi=noirq panic=-1",
            "-serial", "file:\(directory)/console.log",
            "-chardev", "socket,id=agent,path=\(socket),server=on,wait=off",
            "-device", "virtio-serial-pci,id=serial0",
            "-device", "virtserialport,bus=serial0.0,chardev=agent,name=\(AgentProtocol.serialPortName)",
        ]
        qemu.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        qemu.standardError = errors
        let started = ContinuousClock.now
        do {
            try qemu.run()
        } catch {
            return (false, "cannot start qemu-system-x86_64: \(error)")
        }
        defer {
            // SIGKILL: the VM is disposable, and QEMU may have inherited a mask that blocks SIGTERM.
            if qemu.isRunning { kill(qemu.processIdentifier, SIGKILL) }
            qemu.waitUntilExit()
        }
        let result = await AgentReadiness.waitForHealth(socketPath: socket, deadline: started + timeout, isAlive: { qemu.isRunning })
        if case .success = result {
            return (true, "agent ready after \(ContinuousClock.now - started)")
        }
        if !qemu.isRunning {
            let message = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            return (false, "QEMU exited: \(message.split(separator: "\n").first.map(String.init) ?? "status \(qemu.terminationStatus)")")
        }
        return (false, "no agent answer within \(timeout)")
    }
}
