import AgentAPI
import CLinuxSys
import FoundationEssentials
import Glibc
import Hypervisor
import Logging
import SwiftKataOS
import SwiftProtobuf
import Synchronization

/// `kubectl port-forward` for a pod in a VM. containerd's CRI PortForward enters the pod's network
/// namespace and dials `localhost:<port>` there, but that namespace only holds the plumbing to the
/// VM: the pod's processes listen inside the guest. So the shim keeps a listener on that
/// namespace's loopback, and one iptables rule there sends every TCP connection to the loopback to
/// it (REDIRECT); the port that was dialled comes back with SO_ORIGINAL_DST. Each connection is
/// carried through the agent to the same port in the guest (its loopback, then its addresses).
final class PortForwarder: Sendable {
    /// The listening socket, -1 once closed. Only the accept loop closes it; `stop` shuts it down to
    /// wake that loop, and only while it is open: a number the loop closed may already be another
    /// descriptor's (a containerd connection, a forwarded one).
    private let listener: Mutex<CInt>
    private let listenerPort: UInt16
    private let namespacePath: String
    private let agent: GuestAgent
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)

    /// Listens in the pod's namespace `namespacePath` and starts serving; the rule is added last.
    static func start(namespacePath: String, agent: GuestAgent, logger: Logger) throws(ShimError) -> PortForwarder {
        let namespace = open(namespacePath, O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else {
            throw .failedPrecondition("port forwarding: opening \(namespacePath): \(String(cString: strerror(errno)))")
        }
        defer { close(namespace) }
        var port: UInt16 = 0
        let listener = linux_listen_loopback_in_netns(namespace, 128, &port)
        guard listener >= 0 else {
            throw .failedPrecondition("port forwarding: listening in \(namespacePath): \(String(cString: strerror(errno)))")
        }
        let forwarder = PortForwarder(listener: listener, port: port, namespacePath: namespacePath, agent: agent, logger: logger)
        do { _ = try PodNetwork.run(PodNetworkTools.iptables, forwarder.rule("-A"), in: namespacePath, what: "redirecting the pod's loopback") } catch {
            close(listener)
            throw error
        }
        Task { await forwarder.acceptLoop() }
        return forwarder
    }

    private init(listener: CInt, port: UInt16, namespacePath: String, agent: GuestAgent, logger: Logger) {
        self.listener = Mutex(listener)
        listenerPort = port
        self.namespacePath = namespacePath
        self.agent = agent
        self.logger = logger
    }

    /// The NAT rule in the pod's namespace: TCP to 127.0.0.1, but to the listener itself, goes to it.
    private func rule(_ action: String) -> [String] {
        [
            "-w", "-t", "nat", action, "OUTPUT", "-o", "lo", "-p", "tcp", "-d", "127.0.0.1", "!", "--dport", "\(listenerPort)",
            "-j", "REDIRECT", "--to-ports", "\(listenerPort)",
        ]
    }

    /// Stops accepting, removes the rule (the namespace may outlive this VM), and closes the listener.
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = try? PodNetwork.run(PodNetworkTools.iptables, rule("-D"), in: namespacePath, what: "")
        listener.withLock { listener in
            if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }  // wakes the accept; the loop closes it
        }
    }

    private func acceptLoop() async {
        let listener = listener.withLock { $0 }
        defer {
            self.listener.withLock { listener in
                close(listener)
                listener = -1
            }
        }
        while !stopped.load(ordering: .acquiring) {
            let (fd, error) = await onBlockingThread { () -> (CInt, CInt) in
                let fd = linux_accept_cloexec(listener)
                return (fd, fd < 0 ? errno : 0)
            }
            if fd < 0 {
                if error == EINTR || error == ECONNABORTED { continue }
                if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM {
                    // Out of descriptors or memory: the connection stays queued; try again shortly
                    // instead of spinning on a new thread per attempt.
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
                if !stopped.load(ordering: .acquiring) {
                    logger.error("port forwarding stopped: accepting failed", metadata: ["error": "\(String(cString: strerror(error)))"])
                }
                break
            }
            let port = linux_original_destination_port(fd)
            guard port > 0 else {
                close(fd)
                continue
            }
            Task { await self.forward(fd, to: UInt32(port)) }
        }
    }

    /// Carries one connection to `port` in the guest, both ways, until both sides have ended.
    private func forward(_ fd: CInt, to port: UInt32) async {
        let id: UInt64
        do {
            id = try await agent.call("opening a forwarded connection to port \(port)") { agent in
                try await agent.openPortForward(.with { $0.port = port }).connectionID
            }
        } catch {
            logger.info("port forward refused", metadata: ["port": "\(port)", "error": "\(error)"])
            close(fd)
            return
        }
        logger.debug("port forward opened", metadata: ["port": "\(port)", "connection": "\(id)"])
        async let fromGuest: Void = copyFromGuest(id, to: fd)
        async let toGuest: Void = copyToGuest(from: fd, id)
        _ = await (fromGuest, toGuest)
        _ = try? await agent.call("closing a forwarded connection") { agent in
            try await agent.closePortForward(.with { $0.connectionID = id })
        }
        close(fd)
    }

    /// The client's bytes into the guest; its EOF ends the guest's reading half.
    private func copyToGuest(from fd: CInt, _ id: UInt64) async {
        while true {
            let data = await onBlockingThread { readChunk(fd: fd, limit: 65536) }
            guard !data.isEmpty else { break }
            let request = Swiftkata_Agent_V1_WritePortForwardRequest.with {
                $0.connectionID = id
                $0.data = Data(data)
            }
            guard (try? await agent.call("forwarding bytes into the pod", { agent in try await agent.writePortForward(request) })) != nil
            else { return }
        }
        _ = try? await agent.call("ending a forwarded connection's input") { agent in
            try await agent.closePortForward(
                .with {
                    $0.connectionID = id
                    $0.writeOnly = true
                })
        }
    }

    /// The guest's bytes to the client; the guest's EOF ends the client's reading half.
    private func copyFromGuest(_ id: UInt64, to fd: CInt) async {
        while true {
            let request = Swiftkata_Agent_V1_ReadPortForwardRequest.with {
                $0.connectionID = id
                $0.maxBytes = UInt32(AgentProtocol.maxOutputChunk)
            }
            guard let reply = try? await agent.call("forwarding bytes out of the pod", { agent in try await agent.readPortForward(request) })
            else { break }
            // The guest never gets to send more than asked for; a larger reply is cut, not trusted.
            let data = [UInt8](reply.data.prefix(AgentProtocol.maxOutputChunk))
            if !data.isEmpty {
                guard await onBlockingThread({ (try? writeAll(fd: fd, data)) != nil }) else { break }
            }
            if reply.eof { break }
        }
        shutdown(fd, Int32(SHUT_WR))
    }
}
