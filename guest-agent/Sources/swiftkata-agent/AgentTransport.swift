import AgentAPI
import Glibc
import Logging
import NIOCore
import TTRPC

/// Where the agent listens: vsock port 1024 when the VM has a vsock device, otherwise the
/// virtio-serial port named `io.swiftkata.agent`.
enum AgentTransport {
    /// Serves until the VM goes away. Never returns: PID 1 must not exit.
    static func serveForever(server: TTRPCServer, logger: Logger) async -> Never {
        if hasVirtioDevice(id: virtioVsockDeviceID) {
            do {
                let listener = try await server.listen(vsockPort: AgentProtocol.vsockPort)
                logger.info("agent listening", metadata: ["transport": "vsock", "port": "\(AgentProtocol.vsockPort)"])
                try? await listener.closeFuture.get()
                logger.critical("vsock listener closed")
            } catch {
                logger.error("vsock listen failed, trying virtio-serial", metadata: ["error": "\(error)"])
            }
        }
        await serveSerialPort(server: server, logger: logger)
    }

    /// Serves the virtio-serial port; when the host side hangs up, reopens it for the next connection.
    private static func serveSerialPort(server: TTRPCServer, logger: Logger) async -> Never {
        var announced = false
        var idleBackoff = Duration.milliseconds(1)
        while true {
            guard let device = findSerialPort(named: AgentProtocol.serialPortName) else {
                logger.critical("no vsock device and no virtio-serial port named \(AgentProtocol.serialPortName); the host cannot reach this agent")
                await parkForever()
            }
            let fd = open(device, O_RDWR | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                logger.critical("cannot open \(device): \(String(cString: strerror(errno)))")
                await parkForever()
            }
            do {
                let opened = ContinuousClock.now
                let connection = try await server.serve(streamDescriptor: fd)
                if !announced {
                    logger.info("agent listening", metadata: ["transport": "virtio-serial", "device": "\(device)"])
                    announced = true
                }
                try? await connection.closeFuture.get()
                // While no host end is connected, the port reads as EOF at once and polls as HUP, and
                // the kernel offers no event for "host connected": back off (up to 20 ms) instead of spinning.
                if ContinuousClock.now - opened < .milliseconds(100) {
                    try? await Task.sleep(for: idleBackoff)
                    idleBackoff = min(idleBackoff * 2, .milliseconds(20))
                } else {
                    logger.info("host hung up the agent port; reopening", metadata: ["device": "\(device)"])
                    idleBackoff = .milliseconds(1)
                }
            } catch {
                close(fd)
                logger.critical("cannot serve \(device): \(error)")
                await parkForever()
            }
        }
    }

    /// virtio device id of vsock (virtio spec 5.10). /dev/vsock exists whenever the kernel has vsock
    /// support, so the device list is what tells whether this VM really has one.
    static let virtioVsockDeviceID = 0x13

    /// Whether /sys/bus/virtio/devices lists a device with this virtio device id.
    static func hasVirtioDevice(id: Int) -> Bool {
        for name in directoryEntries("/sys/bus/virtio/devices") {
            guard name.hasPrefix("virtio"),
                  let text = readSmallFile("/sys/bus/virtio/devices/\(name)/device")?.trimmingTrailingNewlines,
                  let value = Int(text.dropFirst(2), radix: 16)
            else { continue }
            if value == id { return true }
        }
        return false
    }

    /// Finds /dev/vportNpM whose name (in /sys/class/virtio-ports/vportNpM/name) is `name`.
    static func findSerialPort(named name: String) -> String? {
        for port in directoryEntries("/sys/class/virtio-ports") {
            guard port.hasPrefix("vport") else { continue }
            let portName = readSmallFile("/sys/class/virtio-ports/\(port)/name")?.trimmingTrailingNewlines
            if portName == name { return "/dev/\(port)" }
        }
        return nil
    }

    /// Keeps PID 1 alive (its exit would panic the kernel) after an unrecoverable setup error.
    private static func parkForever() async -> Never {
        while true { try? await Task.sleep(for: .seconds(3600)) }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var result = self
        while result.last == "\n" { result.removeLast() }
        return result
    }
}
