import AgentAPI
import Foundation
import TTRPC
import Testing

/// Containers of one pod sharing the sandbox container's UTS, IPC and PID namespaces through
/// `linux.namespaces[].path` = `/proc/<guest pid of the sandbox's init>/ns/<type>`, in a real guest.
@Suite("Shared namespaces in the guest", .serialized)
struct GuestNamespaceTests {
    static func namespaces(pid: UInt32, joining types: [String]) -> String {
        (["mount", "network"] + ["uts", "ipc", "pid"].filter { !types.contains($0) }).map { #"{"type": "\#($0)"}"# }
            .joined(separator: ", ")
            + types.map { #", {"type": "\#($0)", "path": "/proc/\#(pid)/ns/\#($0)"}"# }.joined()
    }

    /// Runs `args` as exec `execID` in a running container and returns its stdout.
    static func exec(_ agent: Swiftkata_Agent_V1_AgentClient, id: String, execID: String, args: [String]) async throws -> String {
        var exec = Swiftkata_Agent_V1_ExecProcessRequest()
        exec.containerID = id
        exec.execID = execID
        let argsJSON = String(decoding: try JSONEncoder().encode(args), as: UTF8.self)
        exec.process = Data(#"{"args": \#(argsJSON), "env": ["PATH=/bin"], "cwd": "/"}"#.utf8)
        _ = try await agent.execProcess(exec, timeout: .seconds(30))
        return try await GuestContainerTests.readAll(agent, id: id, execID: execID, stream: .stdout)
    }

    /// "uts=uts:[4026531838]" → "uts:[4026531838]" for every "key=value" word of the output.
    static func values(_ output: String) -> [String: String] {
        var values: [String: String] = [:]
        for word in output.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    static let probe =
        "echo host=$(hostname) uts=$(readlink /proc/self/ns/uts) ipc=$(readlink /proc/self/ns/ipc) pidns=$(readlink /proc/self/ns/pid) self=$$ init=$(head -c 5 /proc/1/cmdline)"

    @Test func appContainersJoinTheSandboxNamespaces() async throws {
        try await GuestContainerTests.withPod { guest, shared in
            let agent = guest.agentClient
            let sandboxSpec = BusyboxRootfs.spec(id: "sandbox", args: ["sleep", "1000"], hostname: "shared-host")
            let sandboxPid = try await GuestContainerTests.createAndStart(agent, shared: shared, id: "sandbox", args: [], spec: sandboxSpec)
            let sandbox = Self.values(try await Self.exec(agent, id: "sandbox", execID: "probe", args: ["sh", "-c", Self.probe]))
            #expect(sandbox["host"] == "shared-host")

            // UTS and IPC shared, its own pid namespace; no hostname of its own (CRI sends "").
            let utsIPC = try await GuestContainerTests.run(
                guest, shared: shared, id: "app", args: ["sh", "-c", Self.probe],
                spec: BusyboxRootfs.spec(
                    id: "app", args: ["sh", "-c", Self.probe],
                    namespaces: Self.namespaces(pid: sandboxPid, joining: ["uts", "ipc"]), hostname: ""))
            let app = Self.values(utsIPC.stdout)
            #expect(utsIPC.exitStatus == 0, "\(utsIPC.stderr)")
            #expect(app["host"] == "shared-host")
            #expect(app["uts"] == sandbox["uts"] && app["uts"] != nil)
            #expect(app["ipc"] == sandbox["ipc"] && app["ipc"] != nil)
            #expect(app["pidns"] != sandbox["pidns"])
            #expect(app["self"] == "1")

            // The pid namespace too (Kubernetes shareProcessNamespace): the sandbox's init is pid 1.
            let all = try await GuestContainerTests.run(
                guest, shared: shared, id: "shares-pid", args: [],
                spec: BusyboxRootfs.spec(
                    id: "shares-pid", args: ["sh", "-c", Self.probe],
                    namespaces: Self.namespaces(pid: sandboxPid, joining: ["uts", "ipc", "pid"]), hostname: ""))
            let joined = Self.values(all.stdout)
            #expect(all.exitStatus == 0, "\(all.stderr)")
            #expect(joined["pidns"] == sandbox["pidns"] && joined["pidns"] != nil)
            #expect(joined["init"] == "sleep")
            #expect(joined["self"] != "1")
            #expect(joined["host"] == "shared-host")

            // A container ends with its init, as with runc: a background child left in the pod's PID
            // namespace is killed, so the output ends (it held stdout) and nothing of it keeps running.
            let orphaner = try await GuestContainerTests.run(
                guest, shared: shared, id: "orphaner", args: [],
                spec: BusyboxRootfs.spec(
                    id: "orphaner", args: ["sh", "-c", "sleep 7777 & echo parent-done"],
                    namespaces: Self.namespaces(pid: sandboxPid, joining: ["uts", "ipc", "pid"]), hostname: ""))
            #expect(orphaner.stdout == "parent-done\n" && orphaner.exitStatus == 0, "\(orphaner.stderr)")
            // Every live process's command line (a zombie's is empty), NUL-separated words.
            let left = try await Self.exec(agent, id: "sandbox", execID: "ps", args: ["sh", "-c", "cat /proc/[0-9]*/cmdline"])
            #expect(left.contains("sleep\u{0}1000") && !left.contains("7777"), "\(left)")

            // Without paths: namespaces of its own, and its own hostname.
            let own = Self.values(try await GuestContainerTests.run(guest, shared: shared, id: "own", args: ["sh", "-c", Self.probe]).stdout)
            #expect(own["host"] == "own")
            #expect(own["uts"] != sandbox["uts"] && own["ipc"] != sandbox["ipc"])

            // Only the init of a live container of this pod can be joined.
            try BusyboxRootfs.make(at: "\(shared)/bad/rootfs")
            func create(_ namespaces: String) async -> TTRPCError? {
                var request = Swiftkata_Agent_V1_CreateContainerRequest()
                request.containerID = "bad"
                request.ociSpec = BusyboxRootfs.spec(id: "bad", args: ["true"], namespaces: namespaces, hostname: "")
                return await #expect(throws: TTRPCError.self) { try await agent.createContainer(request, timeout: .seconds(30)) }
            }
            let agentItself = await create(Self.namespaces(pid: 1, joining: ["uts"]))
            #expect(agentItself?.code == .invalidArgument)
            #expect(agentItself?.message.contains("pid 1 is not the init process of a container in this pod") == true)
            let notAPidPath = await create(#"{"type": "mount"}, {"type": "uts", "path": "/proc/self/ns/uts"}"#)
            #expect(notAPidPath?.code == .invalidArgument)
            #expect(notAPidPath?.message.contains(#""/proc/self/ns/uts" is not /proc/<pid>/ns/uts"#) == true)
            let wrongType = await create(#"{"type": "mount"}, {"type": "ipc", "path": "/proc/\#(sandboxPid)/ns/uts"}"#)
            #expect(wrongType?.code == .invalidArgument)

            let donePid = try await GuestContainerTests.createAndStart(agent, shared: shared, id: "done", args: ["true"])
            var wait = Swiftkata_Agent_V1_WaitProcessRequest()
            wait.containerID = "done"
            _ = try await agent.waitProcess(wait, timeout: .seconds(30))
            let exited = await create(Self.namespaces(pid: donePid, joining: ["ipc"]))
            #expect(exited?.code == .failedPrecondition)
            #expect(exited?.message.contains("container done (pid \(donePid)) has exited") == true)

            // A rejected container leaves nothing behind: the same id works afterwards.
            let ok = try await GuestContainerTests.run(
                guest, shared: shared, id: "bad", args: [],
                spec: BusyboxRootfs.spec(id: "bad", args: ["hostname"], namespaces: Self.namespaces(pid: sandboxPid, joining: ["uts"]), hostname: ""))
            #expect(ok.stdout == "shared-host\n")
        }
    }
}
