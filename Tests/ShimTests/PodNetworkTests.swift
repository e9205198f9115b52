import Testing

@testable import Shim

/// The pod network as read from iproute2's JSON, and how namespace paths reach the guest.
@Suite struct PodNetworkTests {
    /// `ip -j addr show` in a namespace set up by CNI's bridge plugin (trimmed).
    static let addresses = """
        [{"ifindex":1,"ifname":"lo","mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00",
          "addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
         {"ifindex":3,"link_index":9,"ifname":"eth0","mtu":1450,"link_type":"ether","address":"A6:0E:C7:A1:B7:BA",
          "addr_info":[{"family":"inet","local":"10.99.0.7","prefixlen":24,"scope":"global"},
                       {"family":"inet6","local":"fd00::7","prefixlen":64,"scope":"global"},
                       {"family":"inet6","local":"fe80::a40e:c7ff:fea1:b7ba","prefixlen":64,"scope":"link"}]},
         {"ifindex":4,"ifname":"sktap0123456789","mtu":1500,"link_type":"ether","address":"96:9f:80:2b:b5:8a","addr_info":[]},
         {"ifindex":5,"ifname":"net1","mtu":1500,"link_type":"ether","address":"02:00:00:00:00:01",
          "addr_info":[{"family":"inet","local":"192.168.5.2","prefixlen":24,"scope":"global"}]}]
        """
    static let routes4 = """
        [{"dst":"default","gateway":"10.99.0.1","dev":"eth0"},
         {"dst":"10.99.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.99.0.7"},
         {"dst":"10.100.0.0/16","gateway":"10.99.0.254","dev":"eth0","protocol":"boot"},
         {"dst":"192.168.5.0/24","dev":"net1","protocol":"kernel","scope":"link"}]
        """
    static let routes6 = """
        [{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256},
         {"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256},
         {"type":"multicast","dst":"ff00::/8","dev":"eth0","table":"local","protocol":"kernel"}]
        """

    @Test func picksTheDefaultRouteInterfaceWithItsAddressesAndRoutes() throws {
        let scan = try #require(
            try NetworkNamespaceScan.parse(
                addresses: Array(Self.addresses.utf8), routes: [Array(Self.routes4.utf8), Array(Self.routes6.utf8)], excluding: ["sktap0123456789"]))
        #expect(scan.interface.name == "eth0")
        #expect(scan.interface.macAddress == "a6:0e:c7:a1:b7:ba")
        #expect(scan.interface.mtu == 1450)
        #expect(scan.interface.addresses == [.init(ip: "10.99.0.7", prefixLength: 24), .init(ip: "fd00::7", prefixLength: 64)])
        // Kernel routes come back by themselves when the guest adds the addresses; link-local and multicast are not routes to copy.
        #expect(
            scan.routes == [
                .init(destination: "", gateway: "10.99.0.1", device: "eth0", scope: ""),
                .init(destination: "10.100.0.0/16", gateway: "10.99.0.254", device: "eth0", scope: ""),
            ])
        #expect(scan.ignoredInterfaces == ["net1"])
    }

    @Test func loopbackOnlyNamespaceHasNothingToCarry() throws {
        let loopback = #"[{"ifindex":1,"ifname":"lo","mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[]}]"#
        #expect(try NetworkNamespaceScan.parse(addresses: Array(loopback.utf8), routes: [[], Array("[]".utf8)]) == nil)
    }

    @Test func garbageFromIPIsAnError() {
        #expect(throws: ShimError.self) { try NetworkNamespaceScan.parse(addresses: Array("Error: oops".utf8), routes: []) }
        #expect(throws: ShimError.self) { try NetworkNamespaceScan.parse(addresses: Array(#"{"ifname":"eth0"}"#.utf8), routes: []) }
    }

    @Test func tapNamesFitIFNAMSIZAndAreStablePerPod() {
        let layout = PodLayout(stateDirectory: "/run/swiftkata", namespace: "k8s.io", podID: String(repeating: "a", count: 64))
        let name = PodNetwork.tapName(for: layout)
        #expect(name.hasPrefix("sktap") && name.utf8.count == 15)
        #expect(name == PodNetwork.tapName(for: PodLayout(stateDirectory: "/elsewhere", namespace: "k8s.io", podID: String(repeating: "a", count: 64))))
        #expect(name != PodNetwork.tapName(for: PodLayout(stateDirectory: "/run/swiftkata", namespace: "default", podID: String(repeating: "a", count: 64))))
    }

    static let sandboxSpec = """
        {"hostname":"web","linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},
          {"type":"network","path":"/var/run/netns/cni-1234"}],"sysctl":{"net.ipv4.ip_unprivileged_port_start":"0","kernel.shmmax":"1"}},
         "annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"pod-1"}}
        """
    static let appSpec = """
        {"linux":{"namespaces":[{"type":"pid"},{"type":"ipc","path":"/proc/4242/ns/ipc"},{"type":"uts","path":"/proc/4242/ns/uts"},
          {"type":"mount"},{"type":"network","path":"/var/run/netns/cni-1234"}]},
         "annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"pod-1"}}
        """

    @Test func sandboxSpecGivesTheVMItsNetworkNamespaceAndNetSysctls() throws {
        let spec = try BundleSpec(bytes: Array(Self.sandboxSpec.utf8))
        #expect(
            spec.sandboxSetup
                == SandboxSetup(
                    hostname: "web", networkNamespace: "/var/run/netns/cni-1234",
                    networkSysctls: ["net.ipv4.ip_unprivileged_port_start": "0"]))
        let guest = try JSONValue.decode(spec.guestSpec(rootInSharedFS: "p/rootfs", guestSources: [:], guestSeccomp: true))
        let namespaces = try #require(guest["linux"]?["namespaces"]?.arrayValue)
        #expect(namespaces.allSatisfy { $0["path"] == nil }, "the host's netns path means nothing in the guest")
        #expect(namespaces.count == 5)
    }

    @Test func podContainersJoinTheSandboxNamespacesInTheGuest() throws {
        let spec = try BundleSpec(bytes: Array(Self.appSpec.utf8))
        let guest = try JSONValue.decode(spec.guestSpec(rootInSharedFS: "a/rootfs", guestSources: [:], guestSeccomp: true, sandboxGuestPID: 17))
        let paths = (guest["linux"]?["namespaces"]?.arrayValue ?? []).map { ($0["type"]?.stringValue ?? "", $0["path"]?.stringValue) }
        #expect(paths.map(\.0) == ["pid", "ipc", "uts", "mount", "network"])
        #expect(paths.map(\.1) == [nil, "/proc/17/ns/ipc", "/proc/17/ns/uts", nil, nil])
    }

    @Test func aDebugContainerJoinsItsTargetByTheTargetsTaskPID() throws {
        // kubectl debug --target: containerd points pid at the target's task pid (its anchor, 4242),
        // ipc and uts at the sandbox's (QEMU's, 900).
        let json =
            #"{"linux":{"namespaces":[{"type":"pid","path":"/proc/4242/ns/pid"},{"type":"ipc","path":"/proc/900/ns/ipc"},"#
            + #"{"type":"uts","path":"/proc/900/ns/uts"},{"type":"mount"}]}}"#
        let spec = try BundleSpec(bytes: Array(json.utf8))
        let guest = try JSONValue.decode(
            spec.guestSpec(rootInSharedFS: "d/rootfs", guestSources: [:], guestSeccomp: true, sandboxGuestPID: 17, joinTargets: [4242: 31]))
        let paths = (guest["linux"]?["namespaces"]?.arrayValue ?? []).map { $0["path"]?.stringValue }
        #expect(paths == ["/proc/31/ns/pid", "/proc/17/ns/ipc", "/proc/17/ns/uts", nil])
        #expect(BundleSpec.hostPID(inNamespacePath: "/proc/12/ns/pid") == 12)
        #expect(BundleSpec.hostPID(inNamespacePath: "/var/run/netns/x") == nil)
    }

    @Test func hostNamespacePathsWithoutASandboxAreRefused() throws {
        let spec = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"uts","path":"/proc/1/ns/uts"}]}}"#.utf8))
        #expect(throws: ShimError.self) { try spec.guestSpec(rootInSharedFS: "c/rootfs", guestSources: [:], guestSeccomp: true) }
        let user = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"cgroup","path":"/proc/1/ns/cgroup"}]}}"#.utf8))
        #expect(throws: ShimError.self) { try user.guestSpec(rootInSharedFS: "c/rootfs", guestSources: [:], guestSeccomp: true, sandboxGuestPID: 3) }
    }

    @Test func hostNetworkIsRecognisedOnlyWhenTheNetworkNamespaceIsMissing() throws {
        let host = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#.utf8))
        #expect(host.requestsHostNetwork)
        let isolated = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"pid"},{"type":"network"}]}}"#.utf8))
        #expect(!isolated.requestsHostNetwork)
        #expect(!(try BundleSpec(bytes: Array(Self.sandboxSpec.utf8))).requestsHostNetwork)
        #expect(!(try BundleSpec(bytes: Array("{}".utf8))).requestsHostNetwork)
    }

    /// hostIPC and hostPID: the spec lists namespaces but not that type.
    @Test func hostIPCAndPIDAreRecognised() throws {
        let hostPID = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"ipc"},{"type":"mount"},{"type":"network"}]}}"#.utf8))
        #expect(hostPID.requestedHostNamespaces == ["pid"])
        let hostIPC = try BundleSpec(bytes: Array(#"{"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"}]}}"#.utf8))
        #expect(hostIPC.requestedHostNamespaces == ["ipc"])
        let joined = try BundleSpec(
            bytes: Array(#"{"linux":{"namespaces":[{"type":"pid","path":"/proc/9/ns/pid"},{"type":"ipc","path":"/proc/9/ns/ipc"},{"type":"network"}]}}"#.utf8))
        #expect(joined.requestedHostNamespaces.isEmpty, "joining the sandbox's namespaces is not the host's")
        #expect(try BundleSpec(bytes: Array("{}".utf8)).requestedHostNamespaces.isEmpty)
    }
}
