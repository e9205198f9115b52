import AgentAPI
import Foundation
import TTRPC
import Testing

/// Pod networking in a real guest: CreateSandbox configures virtio NICs (found by MAC) with QEMU's
/// user-mode network behind them, then a busybox container sees the result and reaches the host.
@Suite("Pod network in the guest", .serialized)
struct GuestNetworkTests {
    static let mac0 = "52:54:00:12:34:56"
    static let mac1 = "52:54:00:12:34:57"
    /// The MAC of the pod's eth0 on the host, which a pre-booted VM's NIC (booted with mac0) takes.
    static let podMAC = "02:00:00:aa:bb:cc"

    /// Two NICs: eth0 on QEMU's user network (10.0.2.0/24, host at 10.0.2.2), and one the agent renames to pod1.
    static let nics = [
        "-netdev", "user,id=n0,net=10.0.2.0/24", "-device", "virtio-net-pci,netdev=n0,mac=\(mac0)",
        "-netdev", "user,id=n1,net=10.0.3.0/24,restrict=on", "-device", "virtio-net-pci,netdev=n1,mac=\(mac1)",
    ]

    static func interface(
        mac: String, device: String = "", name: String, mtu: UInt32 = 0,
        addresses: [(String, UInt32)]
    ) -> Swiftkata_Agent_V1_NetworkInterface {
        var interface = Swiftkata_Agent_V1_NetworkInterface()
        interface.macAddress = mac
        interface.deviceMacAddress = device
        interface.name = name
        interface.mtu = mtu
        interface.addresses = addresses.map { address, length in
            var ip = Swiftkata_Agent_V1_IPAddress()
            ip.address = address
            ip.prefixLength = length
            return ip
        }
        return interface
    }

    static func route(_ destination: String = "", via gateway: String = "", dev device: String = "") -> Swiftkata_Agent_V1_Route {
        var route = Swiftkata_Agent_V1_Route()
        route.destination = destination
        route.gateway = gateway
        route.device = device
        return route
    }

    /// Shell that waits (5 s at most) until no link is NO-CARRIER: the kernel reports a link running
    /// (operstate up) a moment after it is set up.
    static let waitForCarrier = #"i=0; while [ $i -lt 50 ]; do case "$(ip link)" in *NO-CARRIER*) sleep 0.1; i=$((i+1));; *) break;; esac; done"#

    /// The busybox spec plus /sys read-only, as containerd's default spec has it.
    static func specWithSysfs(id: String, args: [String]) -> Data {
        let spec = String(decoding: BusyboxRootfs.spec(id: id, args: args), as: UTF8.self)
        let sysfs = #"{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},"#
        return Data(spec.replacingOccurrences(of: #""mounts": ["#, with: #""mounts": ["# + sysfs).utf8)
    }

    @Test func createSandboxConfiguresInterfacesRoutesAndSysctls() async throws {
        let listener = try HostLineListener()
        try await GuestContainerTests.withPod(
            qemuArguments: Self.nics,
            configure: { sandbox in
                sandbox.interfaces = [
                    Self.interface(mac: Self.mac0.uppercased(), name: "eth0", mtu: 1400, addresses: [("10.0.2.15", 24)]),
                    Self.interface(mac: Self.mac1, name: "pod1", addresses: [("10.0.3.15", 24), ("fd00:3::15", 64)]),
                ]
                // The gateway route first on purpose: the agent adds link routes first.
                sandbox.routes = [Self.route(via: "10.0.2.2"), Self.route("192.168.50.0/24", dev: "pod1")]
                sandbox.sysctls = ["net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 2147483647"]
            }
        ) { guest, shared in
            async let received = listener.receiveLine(timeoutSeconds: 60)
            let script = """
                \(Self.waitForCarrier)
                ip addr; ip route; ip -6 addr show dev pod1
                echo forward=$(cat /proc/sys/net/ipv4/ip_forward) ping=$(cat /proc/sys/net/ipv4/ping_group_range)
                echo hello-from-pod | nc -w 10 10.0.2.2 \(listener.port)
                """
            let run = try await GuestContainerTests.run(guest, shared: shared, id: "net", args: ["sh", "-c", script])
            print("container output:\n\(run.stdout)\(run.stderr)")
            let out = run.stdout
            #expect(out.contains(": lo: <LOOPBACK,UP,LOWER_UP>"))
            #expect(out.contains("inet 127.0.0.1/8"))
            #expect(out.contains(": eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 "))
            #expect(out.contains("link/ether \(Self.mac0) "))
            #expect(out.contains("inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0"))
            #expect(out.contains(": pod1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 "))
            #expect(out.contains("inet 10.0.3.15/24 brd 10.0.3.255 scope global pod1"))
            #expect(out.contains("inet6 fd00:3::15/64 scope global"))
            #expect(!out.contains("eth1"))
            #expect(out.contains("default via 10.0.2.2 dev eth0"))
            #expect(out.contains("192.168.50.0/24 dev pod1 scope link"))
            #expect(out.contains("forward=1 ping=0 2147483647"))
            #expect(run.exitStatus == 0)
            // The configured NIC carries traffic: QEMU forwards 10.0.2.2:<port> to the host's loopback.
            #expect(try await received == "hello-from-pod")

            // Bad or conflicting configuration: clear statuses naming what failed; the guest keeps serving.
            let agent = guest.agentClient
            var again = Swiftkata_Agent_V1_CreateSandboxRequest()
            again.interfaces = [Self.interface(mac: Self.mac0, name: "eth0", addresses: [("10.0.2.15", 24)])]
            let exists = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(again, timeout: .seconds(10)) }
            #expect(exists?.code == .alreadyExists)
            #expect(exists?.message.hasPrefix("interface eth0 (\(Self.mac0)): adding 10.0.2.15/24: File exists") == true)

            var missing = Swiftkata_Agent_V1_CreateSandboxRequest()
            missing.interfaces = [Self.interface(mac: "52:54:00:00:00:99", name: "eth9", addresses: [])]
            let notFound = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(missing, timeout: .seconds(10)) }
            #expect(notFound?.code == .notFound)
            #expect(notFound?.message.contains("52:54:00:00:00:99") == true)

            var unreachable = Swiftkata_Agent_V1_CreateSandboxRequest()
            unreachable.routes = [Self.route("10.77.0.0/16", via: "192.0.2.1")]
            let noRoute = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(unreachable, timeout: .seconds(10)) }
            #expect(noRoute?.message.hasPrefix("route 10.77.0.0/16 via 192.0.2.1: adding: ") == true)

            var badRoute = Swiftkata_Agent_V1_CreateSandboxRequest()
            badRoute.routes = [Self.route("10.77.0.1/16", via: "10.0.2.2")]
            let invalid = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(badRoute, timeout: .seconds(10)) }
            #expect(invalid?.code == .invalidArgument)
            #expect(invalid?.message == "CreateSandbox: routes[0].destination: 10.77.0.1/16 has host bits set (the network is 10.77.0.0/16)")

            for (key, code) in [("kernel.hostname", TTRPCStatusCode.invalidArgument), ("net.ipv4.no_such_knob", .invalidArgument)] {
                var sysctl = Swiftkata_Agent_V1_CreateSandboxRequest()
                sysctl.sysctls = [key: "1"]
                let refused = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(sysctl, timeout: .seconds(10)) }
                #expect(refused?.code == code)
                #expect(refused?.message.contains(key) == true)
            }
            #expect(try await agent.health(.init(), timeout: .seconds(10)).apiVersion == AgentProtocol.apiVersion)
        }
    }

    /// A pre-booted (warm pool) VM's NIC has a MAC of its own: the agent finds it by that and gives it the pod's.
    @Test func aPreBootedNICTakesThePodsMAC() async throws {
        let listener = try HostLineListener()
        let nic = ["-netdev", "user,id=n0,net=10.0.2.0/24", "-device", "virtio-net-pci,netdev=n0,mac=\(Self.mac0)"]
        try await GuestContainerTests.withPod(
            qemuArguments: nic,
            configure: { sandbox in
                sandbox.interfaces = [Self.interface(mac: Self.podMAC, device: Self.mac0, name: "eth0", addresses: [("10.0.2.15", 24)])]
                sandbox.routes = [Self.route(via: "10.0.2.2")]
            }
        ) { guest, shared in
            async let received = listener.receiveLine(timeoutSeconds: 60)
            let script = """
                \(Self.waitForCarrier)
                echo address=$(cat /sys/class/net/eth0/address); ip link show eth0
                echo hello-with-pod-mac | nc -w 10 10.0.2.2 \(listener.port)
                """
            let run = try await GuestContainerTests.run(
                guest, shared: shared, id: "mac", args: [],
                spec: Self.specWithSysfs(id: "mac", args: ["sh", "-c", script]))
            print("container output:\n\(run.stdout)\(run.stderr)")
            #expect(run.stdout.contains("address=\(Self.podMAC)\n"))
            #expect(run.stdout.contains(": eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> "))
            #expect(run.exitStatus == 0)
            // QEMU's user network answers the new MAC: 10.0.2.2:<port> is the host's loopback.
            #expect(try await received == "hello-with-pod-mac")

            // The pool MAC is gone: asking for it again names both MACs.
            var again = Swiftkata_Agent_V1_CreateSandboxRequest()
            again.interfaces = [Self.interface(mac: Self.podMAC, device: Self.mac0, name: "eth0", addresses: [])]
            let gone = await #expect(throws: TTRPCError.self) { try await guest.agentClient.createSandbox(again, timeout: .seconds(10)) }
            #expect(gone?.code == .notFound)
            #expect(gone?.message == "interface eth0 (\(Self.mac0), to become \(Self.podMAC)): no guest network device has MAC address \(Self.mac0)")
        }
    }

    @Test func loopbackComesUpWithoutInterfaces() async throws {
        try await GuestContainerTests.withPod { guest, shared in
            let run = try await GuestContainerTests.run(guest, shared: shared, id: "lo", args: ["ip", "addr", "show", "dev", "lo"])
            #expect(run.stdout.contains("<LOOPBACK,UP,LOWER_UP>"))
            #expect(run.stdout.contains("inet 127.0.0.1/8"))
        }
    }
}

/// A TCP listener on the host's loopback that accepts one connection and reads one line.
final class HostLineListener: Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound, listen(fd, 1) == 0 else {
            let message = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw QEMUGuest.Failure(description: "host listener: \(message)")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// The first line sent by the first client, or nil when none arrives in time.
    func receiveLine(timeoutSeconds: Int32) async -> String? {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pollfd, 1, timeoutSeconds * 1000) == 1 else { return continuation.resume(returning: nil) }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return continuation.resume(returning: nil) }
                defer { close(client) }
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 256)
                var clientPoll = Glibc.pollfd(fd: client, events: Int16(POLLIN), revents: 0)
                while !bytes.contains(0x0a), poll(&clientPoll, 1, timeoutSeconds * 1000) == 1 {
                    let count = read(client, &buffer, buffer.count)
                    if count <= 0 { break }
                    bytes += buffer[0..<count]
                }
                let line = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).first.map { String(decoding: $0, as: UTF8.self) }
                continuation.resume(returning: line)
            }
        }
    }
}
