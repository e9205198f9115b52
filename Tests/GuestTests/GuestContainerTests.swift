import AgentAPI
import Foundation
import TTRPC
import Testing

/// Containers inside one real guest (kernel + agent under QEMU), rootfs shared from the host over 9p.
/// One VM serves every check, as a pod would.
@Suite("Containers in the guest", .serialized)
struct GuestContainerTests {
    /// Runs `body` with a booted guest whose sandbox has the shared fs mounted. `qemuArguments` are
    /// added to QEMU's command line; `configure` completes the CreateSandbox request.
    static func withPod(
        image: String? = nil, qemuArguments: [String] = [], configure: (inout Swiftkata_Agent_V1_CreateSandboxRequest) -> Void = { _ in },
        _ body: (QEMUGuest, String) async throws -> Void
    ) async throws {
        let shared = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-shared-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let guest = try await QEMUGuest.boot(image: image, shared: shared, extraArguments: qemuArguments)
        do {
            _ = try await guest.waitForAgent()
            var sandbox = Swiftkata_Agent_V1_CreateSandboxRequest()
            sandbox.sandboxID = "pod"
            sandbox.hostname = "pod"
            sandbox.sharedFs.type = .sharedFilesystem9P
            sandbox.sharedFs.tag = "shared"
            configure(&sandbox)
            _ = try await guest.agentClient.createSandbox(sandbox, timeout: .seconds(30))
            try await body(guest, shared)
        } catch {
            print("console:\n\(guest.consoleLog)")
            await guest.shutdown()
            throw error
        }
        await guest.shutdown()
    }

    struct Run {
        var pid: UInt32
        var stdout: String
        var stderr: String
        var exitStatus: UInt32
    }

    /// Creates and starts container `id`, optionally feeds stdin, collects output and the exit status.
    static func run(
        _ guest: QEMUGuest, shared: String, id: String, args: [String], stdin: String? = nil, extraLinux: String = "",
        terminal: Bool = false, terminalSize: (rows: UInt32, columns: UInt32)? = nil, spec: Data? = nil
    ) async throws -> Run {
        try BusyboxRootfs.make(at: "\(shared)/\(id)/rootfs")
        let agent = guest.agentClient
        var create = Swiftkata_Agent_V1_CreateContainerRequest()
        create.containerID = id
        create.ociSpec = spec ?? BusyboxRootfs.spec(id: id, args: args, terminal: terminal, extraLinux: extraLinux)
        create.stdin = stdin != nil
        create.terminal = terminal
        let pid = try await agent.createContainer(create, timeout: .seconds(30)).pid
        if let terminalSize {
            var resize = Swiftkata_Agent_V1_ResizeTtyRequest()
            resize.containerID = id
            resize.rows = terminalSize.rows
            resize.columns = terminalSize.columns
            _ = try await agent.resizeTty(resize, timeout: .seconds(10))
        }
        var start = Swiftkata_Agent_V1_StartContainerRequest()
        start.containerID = id
        _ = try await agent.startContainer(start, timeout: .seconds(30))
        if let stdin {
            var write = Swiftkata_Agent_V1_WriteStdinRequest()
            write.containerID = id
            write.data = Data(stdin.utf8)
            _ = try await agent.writeStdin(write, timeout: .seconds(10))
            var close = Swiftkata_Agent_V1_CloseStdinRequest()
            close.containerID = id
            _ = try await agent.closeStdin(close, timeout: .seconds(10))
        }
        async let stdout = readAll(agent, id: id, stream: .stdout)
        async let stderr = readAll(agent, id: id, stream: .stderr)
        var wait = Swiftkata_Agent_V1_WaitProcessRequest()
        wait.containerID = id
        let exit = try await agent.waitProcess(wait, timeout: .seconds(60))
        let run = Run(pid: pid, stdout: try await stdout, stderr: try await stderr, exitStatus: exit.exitStatus)
        var remove = Swiftkata_Agent_V1_RemoveContainerRequest()
        remove.containerID = id
        _ = try await agent.removeContainer(remove, timeout: .seconds(30))
        return run
    }

    /// Creates and starts a busybox container that keeps running (for exec, kill and teardown checks);
    /// returns its guest pid.
    @discardableResult
    static func createAndStart(
        _ agent: Swiftkata_Agent_V1_AgentClient, shared: String, id: String, args: [String], spec: Data? = nil, stdin: Bool = false
    ) async throws -> UInt32 {
        try BusyboxRootfs.make(at: "\(shared)/\(id)/rootfs")
        var create = Swiftkata_Agent_V1_CreateContainerRequest()
        create.containerID = id
        create.ociSpec = spec ?? BusyboxRootfs.spec(id: id, args: args)
        create.stdin = stdin
        let pid = try await agent.createContainer(create, timeout: .seconds(30)).pid
        var start = Swiftkata_Agent_V1_StartContainerRequest()
        start.containerID = id
        _ = try await agent.startContainer(start, timeout: .seconds(30))
        return pid
    }

    /// Starts exec `execID` of `args` (PATH=/bin, cwd /) in the running container `id`.
    static func exec(_ agent: Swiftkata_Agent_V1_AgentClient, id: String, execID: String, args: [String]) async throws {
        var exec = Swiftkata_Agent_V1_ExecProcessRequest()
        exec.containerID = id
        exec.execID = execID
        exec.process = try JSONSerialization.data(withJSONObject: ["args": args, "env": ["PATH=/bin"], "cwd": "/"])
        _ = try await agent.execProcess(exec, timeout: .seconds(30))
    }

    static func readAll(
        _ agent: Swiftkata_Agent_V1_AgentClient, id: String, execID: String = "", stream: Swiftkata_Agent_V1_OutputStream,
        timeout: Duration = .seconds(60)
    ) async throws -> String {
        var output = Data()
        while true {
            var read = Swiftkata_Agent_V1_ReadOutputRequest()
            read.containerID = id
            read.execID = execID
            read.stream = stream
            let chunk = try await agent.readOutput(read, timeout: timeout)
            output.append(chunk.data)
            if chunk.eof { return String(decoding: output, as: UTF8.self) }
        }
    }

    @Test func busyboxContainersRunInTheGuest() async throws {
        try await Self.withPod { guest, shared in
            // stdout captured, exit code propagated.
            let hello = try await Self.run(guest, shared: shared, id: "hello", args: ["sh", "-c", "echo hello from $(hostname); echo oops >&2; exit 3"])
            #expect(hello.stdout == "hello from hello\n")
            #expect(hello.stderr == "oops\n")
            #expect(hello.exitStatus == 3)

            // The guest kernel, not the host's.
            let uname = try await Self.run(guest, shared: shared, id: "uname", args: ["uname", "-r"])
            let (_, _, release) = try QEMUGuest.artifacts()
            #expect(uname.stdout == "\(release)\n")

            // stdin echoed back through cat.
            let cat = try await Self.run(guest, shared: shared, id: "cat", args: ["cat"], stdin: "ping through stdin\n")
            #expect(cat.stdout == "ping through stdin\n")
            #expect(cat.exitStatus == 0)

            // A seccomp profile denying mkdir makes it fail with EPERM; everything else still works.
            let seccomp =
                #", "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#
            let denied = try await Self.run(guest, shared: shared, id: "seccomp", args: ["sh", "-c", "mkdir /tmp/x; echo status=$?"], extraLinux: seccomp)
            #expect(denied.stderr.contains("Operation not permitted"))
            #expect(denied.stdout == "status=1\n")

            // A terminal: the process has a pty as its controlling tty, sized by ResizeTty.
            // The pty comes from the container's own devpts, so `tty` can name it.
            let tty = try await Self.run(
                guest, shared: shared, id: "tty", args: ["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo interactive; stty size"],
                terminal: true, terminalSize: (rows: 40, columns: 100))
            #expect(tty.stdout == "/dev/pts/0\r\ninteractive\r\n40 100\r\n")
            #expect(tty.stderr.isEmpty)
            #expect(tty.exitStatus == 0)

            // A memory limit produces an OOM kill (137) and an OOM event for that container.
            async let oom = guest.agentClient.getOOMEvent(.init(), timeout: .seconds(60))
            let hog = try await Self.run(
                guest, shared: shared, id: "hog", args: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                extraLinux: #", "resources": {"memory": {"limit": 16777216}}"#)
            #expect(hog.exitStatus == 137)
            #expect(try await oom.containerID == "hog")

            // Its own pid namespace: the init is pid 1.
            let pid = try await Self.run(guest, shared: shared, id: "pidns", args: ["sh", "-c", "echo $$"])
            #expect(pid.stdout == "1\n")
        }
    }

    /// The initramfs form of the image: the agent moves its root to a tmpfs first (an initramfs
    /// cannot be pivoted away from), then containers pivot_root as on the root disk.
    @Test func initramfsRootRunsContainersToo() async throws {
        try await Self.withPod(image: try QEMUGuest.initramfsImage()) { guest, shared in
            let hello = try await Self.run(guest, shared: shared, id: "hello", args: ["sh", "-c", "echo hello; cat /proc/1/mountinfo | wc -l"])
            #expect(hello.stdout.hasPrefix("hello\n"))
            #expect(hello.exitStatus == 0)
        }
    }

    /// Each of the agent's descriptors is closed once. A started process's start handles are closed by
    /// its start; removing its container later must not close those numbers again, for by then the
    /// agent has handed them out anew: here to the stdio of a container created after that start.
    @Test func removingAStartedContainerLeavesAnotherContainersStdioAlone() async throws {
        try await Self.withPod { guest, shared in
            let agent = guest.agentClient
            try await Self.createAndStart(agent, shared: shared, id: "first", args: ["sleep", "1000"])
            try await Self.exec(agent, id: "first", execID: "probe", args: ["sleep", "1000"])
            try await Self.createAndStart(agent, shared: shared, id: "second", args: ["sh", "-c", "read line; echo got:$line"], stdin: true)

            var remove = Swiftkata_Agent_V1_RemoveContainerRequest()
            remove.containerID = "first"
            _ = try await agent.removeContainer(remove, timeout: .seconds(30))

            var write = Swiftkata_Agent_V1_WriteStdinRequest()
            write.containerID = "second"
            write.data = Data("hello\n".utf8)
            _ = try await agent.writeStdin(write, timeout: .seconds(10))
            async let stdout = Self.readAll(agent, id: "second", stream: .stdout, timeout: .seconds(20))
            var wait = Swiftkata_Agent_V1_WaitProcessRequest()
            wait.containerID = "second"
            #expect(try await agent.waitProcess(wait, timeout: .seconds(20)).exitStatus == 0)
            #expect(try await stdout == "got:hello\n", "the second container's stdin and stdout still work")
            let health = try await agent.health(.init(), timeout: .seconds(10))
            #expect(health.apiVersion == AgentProtocol.apiVersion)
        }
    }

    @Test func killExecAndBadInput() async throws {
        try await Self.withPod { guest, shared in
            let agent = guest.agentClient
            try await Self.createAndStart(agent, shared: shared, id: "sleeper", args: ["sleep", "1000"])

            // An exec sees the container's pid namespace: pid 1 there is the sleeper.
            try await Self.exec(agent, id: "sleeper", execID: "probe", args: ["cat", "/proc/1/cmdline"])
            let cmdline = try await Self.readAll(agent, id: "sleeper", execID: "probe", stream: .stdout)
            #expect(cmdline == "sleep\u{0}1000\u{0}")
            var waitExec = Swiftkata_Agent_V1_WaitProcessRequest()
            waitExec.containerID = "sleeper"
            waitExec.execID = "probe"
            #expect(try await agent.waitProcess(waitExec, timeout: .seconds(30)).exitStatus == 0)

            // SIGKILL gives 137.
            var kill = Swiftkata_Agent_V1_SignalProcessRequest()
            kill.containerID = "sleeper"
            kill.signal = 9
            _ = try await agent.signalProcess(kill, timeout: .seconds(10))
            var wait = Swiftkata_Agent_V1_WaitProcessRequest()
            wait.containerID = "sleeper"
            #expect(try await agent.waitProcess(wait, timeout: .seconds(30)).exitStatus == 137)
            var remove = Swiftkata_Agent_V1_RemoveContainerRequest()
            remove.containerID = "sleeper"
            _ = try await agent.removeContainer(remove, timeout: .seconds(30))

            // Bad input: clear statuses, and the agent keeps serving.
            var unknown = Swiftkata_Agent_V1_StartContainerRequest()
            unknown.containerID = "nope"
            let notFound = await #expect(throws: TTRPCError.self) { try await agent.startContainer(unknown, timeout: .seconds(10)) }
            #expect(notFound?.code == .notFound)

            var malformed = Swiftkata_Agent_V1_CreateContainerRequest()
            malformed.containerID = "bad"
            malformed.ociSpec = Data("{not json".utf8)
            let badSpec = await #expect(throws: TTRPCError.self) { try await agent.createContainer(malformed, timeout: .seconds(10)) }
            #expect(badSpec?.code == .invalidArgument)

            var noRootfs = Swiftkata_Agent_V1_CreateContainerRequest()
            noRootfs.containerID = "ghost"
            noRootfs.ociSpec = BusyboxRootfs.spec(id: "ghost", args: ["sh"])
            let missingRoot = await #expect(throws: TTRPCError.self) { try await agent.createContainer(noRootfs, timeout: .seconds(10)) }
            #expect(missingRoot?.message.contains("does not exist") == true)

            try BusyboxRootfs.make(at: "\(shared)/nobin/rootfs")
            var noBinary = Swiftkata_Agent_V1_CreateContainerRequest()
            noBinary.containerID = "nobin"
            noBinary.ociSpec = BusyboxRootfs.spec(id: "nobin", args: ["/no/such/binary"])
            let missingBinary = await #expect(throws: TTRPCError.self) { try await agent.createContainer(noBinary, timeout: .seconds(10)) }
            #expect(missingBinary?.message.contains("/no/such/binary") == true)
            #expect(missingBinary?.code == .notFound, "a missing executable is NotFound, as with runc")

            var escape = Swiftkata_Agent_V1_CreateContainerRequest()
            escape.containerID = "escape"
            escape.ociSpec = Data(#"{"process": {"args": ["sh"]}, "root": {"path": "../../etc"}}"#.utf8)
            let escaped = await #expect(throws: TTRPCError.self) { try await agent.createContainer(escape, timeout: .seconds(10)) }
            #expect(escaped?.code == .invalidArgument)

            var badID = Swiftkata_Agent_V1_CreateContainerRequest()
            badID.containerID = "../x"
            badID.ociSpec = BusyboxRootfs.spec(id: "x", args: ["sh"])
            let invalidID = await #expect(throws: TTRPCError.self) { try await agent.createContainer(badID, timeout: .seconds(10)) }
            #expect(invalidID?.code == .invalidArgument)

            var withNetwork = Swiftkata_Agent_V1_CreateSandboxRequest()
            withNetwork.interfaces = [Swiftkata_Agent_V1_NetworkInterface()]
            let noMAC = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(withNetwork, timeout: .seconds(10)) }
            #expect(noMAC?.code == .invalidArgument)
            #expect(noMAC?.message.contains("interfaces[0].mac_address") == true)
            var badDNS = Swiftkata_Agent_V1_CreateSandboxRequest()
            badDNS.dns.nameservers = ["10.0.0.1 evil"]
            let dnsError = await #expect(throws: TTRPCError.self) { try await agent.createSandbox(badDNS, timeout: .seconds(10)) }
            #expect(dnsError?.code == .invalidArgument)

            let health = try await agent.health(.init(), timeout: .seconds(10))
            #expect(health.apiVersion == AgentProtocol.apiVersion)

            // DestroySandbox removes what is left (a running container included).
            try await Self.createAndStart(agent, shared: shared, id: "left", args: ["sleep", "1000"])
            _ = try await agent.destroySandbox(.init(), timeout: .seconds(30))
            var gone = Swiftkata_Agent_V1_WaitProcessRequest()
            gone.containerID = "left"
            let afterDestroy = await #expect(throws: TTRPCError.self) { try await agent.waitProcess(gone, timeout: .seconds(10)) }
            #expect(afterDestroy?.code == .notFound)
        }
    }
}
