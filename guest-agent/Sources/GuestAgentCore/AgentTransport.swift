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

    /// Serves the virtio-serial port, one host session after another.
    ///
    /// The port stays open for the agent's life. Each session's ttrpc connection reads its requests
    /// from a pipe that `guest_port_relay` fills from the port, and writes its replies to the port
    /// itself; the relay alone decides where a session's input ends: at the host's hang-up, once the
    /// port holds nothing more, or at a request whose stream id starts again (a next host's, arrived
    /// before that hang-up), which the next session gets first.
    /// Served directly, a host that hung up and a next one that connected at once could make NIO's
    /// read-to-EOF find no EOF and trap (PID 1: a kernel panic), and closing the port between sessions
    /// made the kernel discard the next host's first request (GuestBootTests has the reproducer).
    private static func serveSerialPort(server: TTRPCServer, logger: Logger) async -> Never {
        guard let device = findSerialPort(named: AgentProtocol.serialPortName) else {
            logger.critical("no vsock device and no virtio-serial port named \(AgentProtocol.serialPortName); the host cannot reach this agent")
            await parkForever()
        }
        let port = open(device, O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard port >= 0 else {
            logger.critical("cannot open \(device): \(String(cString: strerror(errno)))")
            await parkForever()
        }
        logger.info("agent listening", metadata: ["transport": "virtio-serial", "device": "\(device)"])
        let carry = RelayCarry()
        while true {
            // Serving a port with no host end would only end at once: wait for a host first.
            do {
                try await waitForHost(port: port)
            } catch {
                // Not expected (epoll out of memory or descriptors): serve anyway, at most once a second.
                logger.error("cannot wait for a host on \(device): \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
            var requests: [CInt] = [-1, -1]
            let replies = fcntl(port, F_DUPFD_CLOEXEC, 3)
            guard linux_pipe_cloexec(&requests) == 0, replies >= 0 else {
                logger.critical("cannot create the session's pipe and port descriptor: \(String(cString: strerror(errno)))")
                for fd in requests + [replies] where fd >= 0 { close(fd) }
                await parkForever()
            }
            let connection: TTRPCConnection
            do {
                // Owns and closes the pipe's read end and `replies`, a duplicate of the port.
                connection = try await server.serve(inputDescriptor: requests[0], outputDescriptor: replies)
            } catch {
                for fd in requests + [replies] { close(fd) }
                logger.critical("cannot serve \(device): \(error)")
                await parkForever()
            }
            let requestsOut = requests[1]
            let ended = await onBlockingThread { carry.relay(port: port, requestsOut: requestsOut) }
            close(requestsOut)  // the connection reads to its end and closes
            try? await connection.closeFuture.get()
            switch Int(ended) {
            case GUEST_RELAY_HOST_GONE:
                logger.info("host hung up the agent port; waiting for the next host", metadata: ["device": "\(device)"])
            case GUEST_RELAY_AGENT_CLOSED:
                logger.info("agent connection closed; waiting for the next host", metadata: ["device": "\(device)"])
            case GUEST_RELAY_NEW_HOST:
                logger.info("a next host's request arrived before the previous host's hang-up", metadata: ["device": "\(device)"])
            default:
                logger.error("relaying \(device) failed: \(String(cString: strerror(-ended)))")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The bytes one session of the virtio-serial port hands on to the next (`guest_port_relay`). Used
    /// by one relay at a time, on its blocking thread.
    private final class RelayCarry: @unchecked Sendable {
        private static let capacity = 64 * 1024 + 16
        private let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: RelayCarry.capacity)
        private var length = 0

        func relay(port: CInt, requestsOut: CInt) -> CInt {
            guest_port_relay(port, requestsOut, bytes, Self.capacity, &length)
        }

        deinit { bytes.deallocate() }
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
