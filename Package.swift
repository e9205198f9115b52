// swift-tools-version: 6.1
// swiftkata: a secure container runtime for containerd and Kubernetes (one VM per pod).
import PackageDescription

let package = Package(
    name: "swiftkata",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TTRPC", targets: ["TTRPC"]),
        .library(name: "ContainerdAPI", targets: ["ContainerdAPI"]),
        .library(name: "AgentAPI", targets: ["AgentAPI"]),
        .executable(name: "swiftkata-agent", targets: ["swiftkata-agent"]),
        .executable(name: "containerd-shim-swiftkata-v2", targets: ["containerd-shim-swiftkata-v2"]),
        .executable(name: "swiftkata-check", targets: ["swiftkata-check"]),
        .executable(name: "swiftkata-vm", targets: ["swiftkata-vm"]),
        .executable(name: "swiftkata-anchor", targets: ["swiftkata-anchor"]),
        .executable(name: "swiftkata-ctl", targets: ["swiftkata-ctl"]),
        .executable(name: "swiftkata-hostile-agent", targets: ["swiftkata-hostile-agent"]),
        .executable(name: "ttrpc-bench", targets: ["TTRPCBench"]),
        .executable(name: "hypervisor-bench", targets: ["HypervisorBench"]),
        .executable(name: "ttrpc-fuzz", targets: ["TTRPCFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Linux calls Swift's Glibc module does not expose (pipe2, ptys, pidfds, openat2), for host
        // and guest alike.
        .target(name: "CLinuxSys"),
        // The one OS layer of host and guest: files by descriptor, bounded reads, atomic writes,
        // tree removal that stays on its file system, mounts, process spawning; errors keep errno.
        .target(
            name: "SwiftKataOS",
            dependencies: ["CLinuxSys", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // ttrpc: containerd's RPC protocol, wire-compatible with github.com/containerd/ttrpc.
        .target(
            name: "TTRPC",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // containerd's task v2, events and types APIs (generated), with typed service protocols.
        .target(
            name: "ContainerdAPI",
            dependencies: [
                "TTRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // swiftkata's own host <-> guest agent protocol (generated from agent.proto).
        .target(
            name: "AgentAPI",
            dependencies: [
                "TTRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["agent.proto"]
        ),
        // swiftkata's operator protocol: what `swiftkata-ctl` asks a pod's shim (generated from
        // operator.proto), and the node's counters every shim adds to.
        .target(
            name: "OperatorAPI",
            dependencies: [
                "TTRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["operator.proto"]
        ),
        // What the guest agent applies: OCI spec model and its translation into spawn plans.
        .target(
            name: "AgentRuntime",
            dependencies: ["CSeccomp", "CLinuxSys"],
            path: "guest-agent/Sources/AgentRuntime",
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // libseccomp (Debian libseccomp-dev), to compile OCI seccomp profiles to BPF.
        .systemLibrary(
            name: "CSeccomp",
            path: "guest-agent/Sources/CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // Creates container processes: namespaces, mounts, credentials, seccomp, exec. C, so that no
        // Swift code runs between fork and exec.
        .target(
            name: "CContainerSpawn",
            path: "guest-agent/Sources/CContainerSpawn"
        ),
        // The guest's own Linux calls: inotify, virtio-serial ports, switch_root, rtnetlink.
        .target(
            name: "CGuestSys",
            path: "guest-agent/Sources/CGuestSys"
        ),
        // What every guest-side PID 1 needs: the essential mounts, and serving the agent API on the
        // VM's vsock or virtio-serial port (the agent, and the test-only hostile agent).
        .target(
            name: "GuestAgentCore",
            dependencies: [
                "TTRPC", "AgentAPI", "CGuestSys", "CLinuxSys", "SwiftKataOS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "guest-agent/Sources/GuestAgentCore",
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // The guest agent: PID 1 in the pod's VM. Kept free of full Foundation (no ICU in the image).
        .executableTarget(
            name: "swiftkata-agent",
            dependencies: [
                "TTRPC", "AgentAPI", "AgentRuntime", "CContainerSpawn", "CGuestSys", "CLinuxSys", "SwiftKataOS", "GuestAgentCore",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "guest-agent/Sources/swiftkata-agent",
            // Only what this target imports itself is visible: Foundation (re-exported by generated
            // protobuf code) must not sneak in and drag ICU's 34 MB of data into the guest image.
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // Pod VMs through libvirt: VM description -> domain XML (the C API binding follows).
        .target(
            name: "Hypervisor",
            dependencies: ["SwiftKataConfig", "SwiftKataOS", "CLinuxSys"],
            path: "Sources/Hypervisor"
        ),
        // The host's side of the agent channel: dialling a booted guest until its agent answers, and
        // the KVM boot probe that waits for that answer.
        .target(
            name: "AgentClient",
            dependencies: ["AgentAPI", "TTRPC", "Hypervisor", "SwiftKataConfig", "SwiftKataOS", "CLinuxSys"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // The libvirt C API binding, kept out of the shim daemon (libvirt.so and its libraries cost
        // ≈ 14 MiB of RSS per pod): the daemon drives domains through `swiftkata-vm`.
        .target(
            name: "HypervisorLibvirt",
            dependencies: ["Hypervisor", "CLibvirt", "SwiftKataOS"]
        ),
        // Creates and destroys pod domains for the shim (one short-lived process per call).
        .executableTarget(
            name: "swiftkata-vm",
            dependencies: ["HypervisorLibvirt", "Hypervisor", "SwiftKataOS"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // The host process that stands for one container of a pod (its pid is the container's task
        // pid); C, a few KiB of memory per container.
        .executableTarget(
            name: "swiftkata-anchor",
            path: "Sources/swiftkata-anchor"
        ),
        // /etc/swiftkata/configuration.toml: every default in code, errors naming file, line and key.
        .target(
            name: "SwiftKataConfig",
            dependencies: ["SwiftKataOS"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // The containerd shim: start/delete/daemon, the task service, pods, stdio, events.
        .target(
            name: "Shim",
            dependencies: [
                "TTRPC", "ContainerdAPI", "AgentAPI", "AgentClient", "OperatorAPI", "Hypervisor", "SwiftKataConfig", "SwiftKataOS",
                "CLinuxSys",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        .executableTarget(
            name: "containerd-shim-swiftkata-v2",
            dependencies: ["Shim"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        // Host readiness for operators: each check passes, fails or warns with a one-line fix.
        .target(
            name: "SwiftKataCheck",
            dependencies: [
                "Hypervisor", "HypervisorLibvirt", "AgentClient", "SwiftKataConfig", "TTRPC", "AgentAPI", "SwiftKataOS",
            ]
        ),
        .executableTarget(
            name: "swiftkata-check",
            dependencies: [
                "SwiftKataCheck",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Operators' view of the node's pods: Prometheus metrics (one scrape asks every shim), the
        // debug console into a pod's VM, the list of pods.
        .target(
            name: "SwiftKataCtl",
            dependencies: [
                "OperatorAPI", "TTRPC", "SwiftKataConfig", "SwiftKataOS",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        .executableTarget(
            name: "swiftkata-ctl",
            dependencies: [
                "SwiftKataCtl", "SwiftKataConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The libvirt C API (Debian libvirt-dev).
        .systemLibrary(
            name: "CLibvirt",
            path: "Sources/CLibvirt",
            pkgConfig: "libvirt",
            providers: [.apt(["libvirt-dev"])]
        ),
        // Echo service shared by the benchmark, the fuzz target and the tests.
        .target(
            name: "TTRPCTestSupport",
            dependencies: [
                "TTRPC",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Support/TTRPCTestSupport"
        ),
        .executableTarget(
            name: "TTRPCBench",
            dependencies: [
                "TTRPC", "TTRPCTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/TTRPCBench"
        ),
        .executableTarget(
            name: "HypervisorBench",
            dependencies: [
                "Hypervisor", "HypervisorLibvirt", "AgentClient", "TTRPC", "AgentAPI", "SwiftKataOS",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/HypervisorBench"
        ),
        // Test-only: a guest agent that attacks the host (lies, floods, oversized replies), booted
        // by the hostile-guest end-to-end tests from an image of its own; never installed.
        .executableTarget(
            name: "swiftkata-hostile-agent",
            dependencies: [
                "GuestAgentCore", "TTRPC", "AgentAPI", "SwiftKataOS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/HostileAgent",
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        .executableTarget(
            name: "TTRPCFuzz",
            dependencies: [
                "TTRPC", "TTRPCTestSupport", "AgentAPI", "ContainerdAPI", "AgentRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Fuzz/TTRPCFuzz",
            exclude: ["corpus"]
        ),
        .testTarget(
            name: "TTRPCTests",
            dependencies: [
                "TTRPC", "TTRPCTestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ContainerdAPITests",
            dependencies: ["ContainerdAPI", "TTRPC"]
        ),
        .testTarget(
            name: "AgentAPITests",
            dependencies: ["AgentAPI", "TTRPC"]
        ),
        .testTarget(
            name: "HypervisorTests",
            dependencies: ["Hypervisor", "HypervisorLibvirt", "AgentClient", "SwiftKataConfig", "TTRPC", "AgentAPI", "SwiftKataOS"],
            exclude: ["Golden"]
        ),
        .testTarget(
            name: "SwiftKataConfigTests",
            dependencies: ["SwiftKataConfig", "Hypervisor", "SwiftKataOS"]
        ),
        .testTarget(
            name: "SwiftKataCheckTests",
            dependencies: ["SwiftKataCheck", "SwiftKataConfig", "SwiftKataOS"]
        ),
        .testTarget(
            name: "ContainerdTests",
            dependencies: [],
            path: "Tests/ContainerdTests"
        ),
        .testTarget(
            name: "ShimTests",
            dependencies: ["Shim", "ContainerdAPI", "TTRPC", "SwiftKataConfig", "AgentAPI", "OperatorAPI", "SwiftKataOS"]
        ),
        .testTarget(
            name: "AgentClientTests",
            dependencies: ["AgentClient"]
        ),
        .testTarget(
            name: "SwiftKataCtlTests",
            dependencies: ["SwiftKataCtl", "OperatorAPI", "SwiftKataOS"]
        ),
        .testTarget(
            name: "SwiftKataOSTests",
            dependencies: ["SwiftKataOS", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "AgentRuntimeTests",
            dependencies: ["AgentRuntime", "CGuestSys"]
        ),
        .testTarget(
            name: "GuestTests",
            dependencies: ["TTRPC", "AgentAPI", "Hypervisor", "TTRPCTestSupport", "SwiftKataOS"]
        ),
        .testTarget(
            name: "InteropTests",
            dependencies: ["TTRPC", "TTRPCTestSupport"],
            path: "Tests/Interop",
            exclude: ["ttrpc-peer", "build-peer.sh"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
