import Foundation
import Testing

/// The tc-mirrored pod network without Kubernetes: a network namespace prepared the way CNI's bridge
/// plugin would (a veth pair, the pod end `eth0` with an address and a default route), handed to
/// `ctr run --with-ns network:<path>`. The VM must take over eth0's identity: same MAC, address,
/// MTU and route, reachable from the host both ways.
///
/// Part of `ShimEndToEndTests` (its checks for leftovers assume no other pod of the test namespace runs).
extension ShimEndToEndTests {
    static let namespaceName = "swiftkata-e2e-net-\(getpid())"
    static let hostEnd = "skveth\(getpid() % 100000)"

    /// Sets up the namespace; returns eth0's MAC.
    private func prepareNamespace() throws -> String {
        let name = Self.namespaceName
        let steps: [[String]] = [
            ["netns", "add", name],
            ["-n", name, "link", "add", "eth0", "mtu", "1400", "type", "veth", "peer", "name", Self.hostEnd],
            ["-n", name, "link", "set", Self.hostEnd, "netns", "1"],
            ["-n", name, "addr", "add", "10.213.0.2/24", "dev", "eth0"],
            ["-n", name, "link", "set", "eth0", "up"],
            ["-n", name, "link", "set", "lo", "up"],
            ["-n", name, "route", "add", "default", "via", "10.213.0.1"],
            ["addr", "add", "10.213.0.1/24", "dev", Self.hostEnd],
            ["link", "set", Self.hostEnd, "mtu", "1400", "up"],
        ]
        for step in steps {
            let result = PrivateContainerd.run("/usr/sbin/ip", step)
            try #require(result.status == 0, "ip \(step.joined(separator: " ")): \(result.output)")
        }
        // "eth0@if7  UP  a6:0e:c7:a1:b7:ba <BROADCAST,…>"
        let brief = PrivateContainerd.run("/usr/sbin/ip", ["-n", name, "-br", "link", "show", "eth0"]).output
        return try #require(brief.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first.map(String.init))
    }

    private func removeNamespace() {
        PrivateContainerd.run("/usr/sbin/ip", ["netns", "del", Self.namespaceName])
        PrivateContainerd.run("/usr/sbin/ip", ["link", "del", Self.hostEnd])
        removeStaleNamespaces()
    }

    /// What a test run killed mid-way left: its namespace and its host end, which holds 10.213.0.1 too
    /// and would take this run's route to the pod (only runs whose process is gone).
    private func removeStaleNamespaces() {
        let names = PrivateContainerd.run("/usr/sbin/ip", ["netns", "list"]).output.split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map(String.init)
        }
        for name in names where name.hasPrefix("swiftkata-e2e-net-") {
            guard let pid = Int32(name.dropFirst("swiftkata-e2e-net-".count)), pid != getpid(), kill(pid, 0) != 0 else { continue }
            PrivateContainerd.run("/usr/sbin/ip", ["netns", "del", name])
            PrivateContainerd.run("/usr/sbin/ip", ["link", "del", "skveth\(pid % 100000)"])
        }
    }

    /// Also on a VM claimed from the warm pool: booted with a NIC of the pool's MAC on a tap in the
    /// host's namespace, which the pod's shim moves into the pod's namespace; the guest takes eth0's MAC.
    @Test(arguments: [false, true])
    func guestTakesOverTheNamespaceInterface(warmPool: Bool) throws {
        removeNamespace()
        let mac = try prepareNamespace()
        defer { removeNamespace() }
        var options: [String] = []
        var warm: WarmPoolState.Entry?
        if warmPool {
            let poolConfig = try poolConfig
            warm = try fillPool(poolConfig)
            options = ["--runtime-config-path", poolConfig]
        }
        defer { if warmPool, let poolConfig = try? poolConfig { drainPool(poolConfig) } }
        let tapPrefix = warmPool ? "skpool" : "sktap"
        let id = "netpod"
        let started = containerd.ctr(
            ["run", "-d", "--runtime", "io.containerd.swiftkata.v2"] + options + [
                "--with-ns", "network:/var/run/netns/\(Self.namespaceName)", containerd.imageRef, id, "sleep", "1000",
            ])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let inside = containerd.ctr([
            "task", "exec", "--exec-id", "ip", id, "sh", "-c",
            "cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; ip addr show dev eth0; ip route; ping -c 1 -W 5 10.213.0.1 >/dev/null && echo ping-ok",
        ])
        #expect(inside.status == 0, "\(inside.output)")
        let lines = inside.output.split(separator: "\n").map(String.init)
        #expect(lines.first == mac, "guest MAC \(lines.first ?? "-") vs eth0 \(mac)")
        #expect(lines.dropFirst().first == "1400")
        #expect(inside.output.contains("inet 10.213.0.2/24"))
        #expect(inside.output.contains("default via 10.213.0.1 dev eth0"))
        #expect(inside.output.contains("ping-ok"), "the guest reaches the host through eth0 and the tap")
        // The host reaches the pod IP, which answers from the VM.
        let ping = PrivateContainerd.run("/bin/busybox", ["ping", "-c", "1", "-W", "5", "10.213.0.2"])
        #expect(ping.status == 0, "\(ping.output)")
        // The tap lives in the pod's namespace next to eth0, not in the host's.
        let links = PrivateContainerd.run("/usr/sbin/ip", ["-n", Self.namespaceName, "-br", "link"]).output
        #expect(links.contains(tapPrefix), "\(links)")
        let hostLinks = try FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")
        if let warm { #expect(!hostLinks.contains(warm.tap)) } else { #expect(!hostLinks.contains { $0.hasPrefix("sktap") }) }
        if let warm { #expect(links.contains(warm.tap) && WarmPoolState.domainRuns(warm.domain), "the pod runs in the pool's VM \(warm)") }

        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        let after = PrivateContainerd.run("/usr/sbin/ip", ["-n", Self.namespaceName, "-br", "link"]).output
        #expect(!after.contains(tapPrefix), "the tap is removed with the pod: \(after)")
        if let warm { #expect(WarmPoolState.awaitGone(warm), "the claimed VM and its tap went with the pod") }
        let qdiscs = PrivateContainerd.run("/usr/sbin/tc", ["-n", Self.namespaceName, "qdisc", "show", "dev", "eth0"]).output
        #expect(!qdiscs.contains("ingress"), "the redirect on eth0 is removed with the pod: \(qdiscs)")
    }

    /// Guest root spoofs: another IPv4 address (ARP and IP), and another MAC. None of it may reach the
    /// host's end of the pod's veth: the host learns no neighbour for the spoofed address or MAC,
    /// while the pod's own traffic still flows.
    @Test func spoofedFramesFromTheGuestNeverLeaveThePod() throws {
        removeNamespace()
        let mac = try prepareNamespace()
        defer { removeNamespace() }
        let id = "spoofer"
        let started = containerd.ctr([
            "run", "-d", "--privileged", "--runtime", "io.containerd.swiftkata.v2",
            "--with-ns", "network:/var/run/netns/\(Self.namespaceName)", containerd.imageRef, id, "sleep", "1000",
        ])
        try #require(started.status == 0, "\(started.output)")
        defer {
            removeContainer(id)
            #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        }
        let script = """
            ping -c 3 -W 5 10.213.0.1 >/dev/null && echo own-ok
            ip addr add 10.213.0.250/24 dev eth0
            ping -c 2 -W 2 -I 10.213.0.250 10.213.0.1 >/dev/null && echo spoofed-ip-answered
            arping -c 2 -w 3 -s 10.213.0.77 -I eth0 10.213.0.1 >/dev/null 2>&1
            ip link set eth0 down; ip link set eth0 address 02:42:de:ad:be:ef; ip link set eth0 up
            ping -c 2 -W 2 10.213.0.1 >/dev/null && echo spoofed-mac-answered
            echo done
            """
        let run = containerd.ctr(["task", "exec", "--exec-id", "spoof", id, "sh", "-c", script])
        #expect(run.output.contains("own-ok"), "\(run.output)")
        #expect(run.output.contains("done"), "\(run.output)")
        #expect(!run.output.contains("spoofed-ip-answered"), "\(run.output)")
        #expect(!run.output.contains("spoofed-mac-answered"), "\(run.output)")
        let neighbours = PrivateContainerd.run("/usr/sbin/ip", ["neigh", "show", "dev", Self.hostEnd]).output
        #expect(!neighbours.contains("10.213.0.250") && !neighbours.contains("10.213.0.77"), "the host learned a spoofed address: \(neighbours)")
        #expect(!neighbours.contains("02:42:de:ad:be:ef"), "the host learned a spoofed MAC: \(neighbours)")
        #expect(neighbours.contains("10.213.0.2") && neighbours.contains(mac), "the pod's own address is known: \(neighbours)")
    }
}
