import AgentAPI
import CGuestSys
import CLinuxSys
import Glibc
import Logging
import NIOCore
import SwiftKataOS
import TTRPC

/// Where the agent listens: vsock port 1024 when the VM has a vsock device, otherwise the
/// virtio-serial port named `io.swiftkata.agent`.
public enum AgentTransport {
    /// Serves until the VM goes away. Never returns: PID 1 must not exit.
    public static func serveForever(server: TTRPCServer, logger: Logger) async -> Never {
        if hasVirtioDevice(id: virtioVsockDeviceID) {
            let listener = linux_vsock_listen(AgentProtocol.vsockPort, 16)
            if listener >= 0 {
                logger.info("agent listening", metadata: ["transport": "vsock", "port": "\(AgentProtocol.vsockPort)"])
                await serveVsock(listener: listener, server: server, logger: logger)
            }
            logger.error("vsock listen failed, trying virtio-serial", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
        await serveSerialPort(server: server, logger: logger)
    }

    /// Accepts vsock connections and serves those of the host's shim: context id 2 from a port below
    /// 1024 (`AgentProtocol.isTrustedVsockPeer`). Anyone else who dials (another local user or pod on
    /// the host, another VM) is hung up on at once. Returns only when accepting fails for good.
    private static func serveVsock(listener: CInt, server: TTRPCServer, logger: Logger) async {
        var refusals = 0
        while true {
            let (fd, cid, port, error) = await onBlockingThread { () -> (CInt, UInt32, UInt32, CInt) in
                var cid: UInt32 = 0
                var port: UInt32 = 0
                let fd = linux_vsock_accept(listener, &cid, &port)
                return (fd, cid, port, fd < 0 ? errno : 0)
            }
            guard fd >= 0 else {
                if error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOBUFS || error == ECONNABORTED { continue }
                logger.critical("vsock accept failed", metadata: ["error": "\(String(cString: strerror(error)))"])
                close(listener)
                return
            }
            guard AgentProtocol.isTrustedVsockPeer(contextID: cid, port: port) else {
                close(fd)
                refusals += 1
                // One line per refusal up to ten, then every thousandth: a flood cannot fill the console.
                if refusals <= 10 || refusals % 1000 == 0 {
                    logger.warning(
                        "refused a vsock peer that is not the host's shim",
                        metadata: [
                            "peer_cid": "\(cid)", "peer_port": "\(port)", "refusals": "\(refusals)",
                        ])
                }
                continue
            }
            Task {
                do {
                    let connection = try await server.serve(connectedSocket: fd)
                    try? await connection.closeFuture.get()
                } catch {
                    close(fd)
                    logger.error("cannot serve a vsock connection", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Serves the virtio-serial port; when the host side hangs up, reopens it and waits for the next host.
    private static func serveSerialPort(server: TTRPCServer, logger: Logger) async -> Never {
        var announced = false
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
            if !announced {
                logger.info("agent listening", metadata: ["transport": "virtio-serial", "device": "\(device)"])
                announced = true
            }
            // Serving a port with no host end would only read EOF at once: wait for a host first.
            do {
                try await waitForHost(port: fd)
            } catch {
                // Not expected (epoll out of memory or descriptors): serve anyway, at most once a second.
                logger.error("cannot wait for a host on \(device): \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
            do {
                let connection = try await server.serve(streamDescriptor: fd)  // owns and closes fd
                try? await connection.closeFuture.get()
                logger.info("host hung up the agent port; reopening", metadata: ["device": "\(device)"])
            } catch {
                close(fd)
                logger.critical("cannot serve \(device): \(error)")
                await parkForever()
            }
        }
    }

    /// How long one wait for a host lasts before the port is checked again (ms): a safety net that
    /// bounds the delay should a host's connect ever not wake the waiter.
    private static let hostWaitRecheckMillis: CInt = 1000

    /// errno from waiting for a host on the port.
    struct HostWaitError: Error, CustomStringConvertible {
        var code: CInt
        var description: String { String(cString: strerror(code)) }
    }

    /// Returns once the host end of the virtio-serial port `fd` is connected, returning at once when
    /// it already is. The wait blocks a thread of its own, not one of Swift's cooperative threads
    /// (with one vCPU there may be only one, and it must keep serving). Leaves `fd` open.
    private static func waitForHost(port fd: CInt) async throws(HostWaitError) {
        let result = await onBlockingThread {
            var result: CInt
            repeat {
                result = guest_port_wait_host(fd, AgentTransport.hostWaitRecheckMillis)
            } while result == 0
            return result
        }
        if result < 0 { throw HostWaitError(code: -result) }
    }

    /// virtio device id of vsock (virtio spec 5.10). /dev/vsock exists whenever the kernel has vsock
    /// support, so the device list is what tells whether this VM really has one.
    static let virtioVsockDeviceID = 0x13

    /// Whether /sys/bus/virtio/devices lists a device with this virtio device id.
    static func hasVirtioDevice(id: Int) -> Bool {
        for name in directoryEntries("/sys/bus/virtio/devices") {
            guard name.hasPrefix("virtio"),
                let text = readText("/sys/bus/virtio/devices/\(name)/device")?.trimmingTrailingNewlines,
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
            let portName = readText("/sys/class/virtio-ports/\(port)/name")?.trimmingTrailingNewlines
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
    public var trimmingTrailingNewlines: String {
        var result = self
        while result.last == "\n" { result.removeLast() }
        return result
    }
}
