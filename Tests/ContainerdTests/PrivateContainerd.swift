import Foundation
import Synchronization
import Testing

private let containerdPID = Mutex<pid_t>(0)

/// A containerd of the tests' own (own root, state and socket; CRI off) whose PATH finds the
/// freshly built `containerd-shim-swiftkata-v2`, with a swiftkata configuration pointing at the
/// guest kernel and image under test. Started once per test process, stopped when it ends.
final class PrivateContainerd: Sendable {
    static let shared = PrivateContainerd()

    let directory: String
    let socket: String
    let namespace = "swiftkata-test"
    let imageRef = "docker.io/swiftkata/busybox:test"
    let configPath: String
    let setupError: String?

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static var productsDirectory: String {
        // swift test builds every product next to the test bundle.
        let candidates = [Bundle.main.bundlePath, "\(packageRoot)/.build/debug"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: "\($0)/containerd-shim-swiftkata-v2") } ?? "\(packageRoot)/.build/debug"
    }

    private init() {
        Self.removeEarlierRuns()
        directory = "/tmp/swiftkata-containerd-\(getpid())"
        socket = "\(directory)/containerd.sock"
        configPath = "\(directory)/configuration.toml"
        setupError = Self.start(directory: directory, socket: socket, configPath: configPath, namespace: namespace, imageRef: imageRef)
    }

    /// Removes what earlier test processes left under /tmp (their containerd's root with its snapshots,
    /// ≈ 4 MiB each): the directory of a process that no longer runs. The newest is kept until the next
    /// run, so its `containerd.log` can be read after a failure. Never crosses into a mount a crashed
    /// run left behind (`--one-file-system`).
    private static func removeEarlierRuns() {
        let prefix = "swiftkata-containerd-"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for name in names where name.hasPrefix(prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            // A live process of that PID may be a test run going on beside this one.
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            _ = run("/bin/rm", ["-rf", "--one-file-system", "/tmp/\(name)"])
        }
    }

    /// The guest kernel and image under test (set by `make test`).
    static var guestPaths: (kernel: String, image: String)? {
        let environment = ProcessInfo.processInfo.environment
        guard let kernel = environment["SWIFTKATA_KERNEL"], let image = environment["SWIFTKATA_IMAGE"] else { return nil }
        // The shim boots the uncompressed vmlinux cached next to bzImage (faster under TCG).
        let vmlinux = URL(fileURLWithPath: kernel).deletingLastPathComponent().appendingPathComponent("vmlinux").path
        return (FileManager.default.fileExists(atPath: vmlinux) ? vmlinux : kernel, image)
    }

    private static func start(directory: String, socket: String, configPath: String, namespace: String, imageRef: String) -> String? {
        guard let guest = guestPaths else { return "SWIFTKATA_KERNEL and SWIFTKATA_IMAGE are not set (run `make test`)" }
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configuration = """
            [hypervisor]
            kernel = "\(guest.kernel)"
            image = "\(guest.image)"

            [runtime]
            debug = true
            """
        let containerdConfig = """
            version = 2
            root = "\(directory)/root"
            state = "\(directory)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            """
        do {
            try configuration.write(toFile: configPath, atomically: true, encoding: .utf8)
            try containerdConfig.write(toFile: "\(directory)/containerd.toml", atomically: true, encoding: .utf8)
        } catch {
            return "writing test configuration: \(error)"
        }
        if let error = launchContainerd(directory: directory, socket: socket, configPath: configPath) { return error }
        // Stopped when the test process exits (containerd leaves running shims alone).
        atexit {
            let pid = containerdPID.withLock { $0 }
            if pid > 0 { kill(pid, SIGTERM) }
        }
        let tar = "\(directory)/busybox.tar"
        let build = run("\(packageRoot)/scripts/make-busybox-image.sh", [tar, imageRef])
        guard build.status == 0 else { return "building the busybox image: \(build.output)" }
        let imported = run("/usr/bin/ctr", ["--address", socket, "-n", namespace, "image", "import", tar])
        guard imported.status == 0 else { return "importing the busybox image: \(imported.output)" }
        return nil
    }

    /// Starts containerd on the test's directory and waits for its socket.
    private static func launchContainerd(directory: String, socket: String, configPath: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/containerd")
        process.arguments = ["--config", "\(directory)/containerd.toml", "--log-level", "debug"]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "\(productsDirectory):\(environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")"
        environment["SWIFTKATA_CONFIG"] = configPath
        process.environment = environment
        if !FileManager.default.fileExists(atPath: "\(directory)/containerd.log") {
            FileManager.default.createFile(atPath: "\(directory)/containerd.log", contents: nil)
        }
        let log = FileHandle(forWritingAtPath: "\(directory)/containerd.log")
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        do { try process.run() } catch { return "starting containerd: \(error)" }
        containerdPID.withLock { $0 = process.processIdentifier }
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: socket) || PrivateContainerd.run("/usr/bin/ctr", ["--address", socket, "version"]).status != 0 {
            guard Date() < deadline, process.isRunning else { return "containerd did not start; see \(directory)/containerd.log" }
            usleep(20_000)
        }
        return nil
    }

    /// Stops containerd and starts it again on the same state: SIGTERM, as a service manager would
    /// (running shims must carry on and be found again), or SIGKILL, a crash.
    func restartContainerd(signal: Int32 = SIGTERM) -> String? {
        let pid = containerdPID.withLock { $0 }
        guard pid > 0 else { return "containerd is not running" }
        kill(pid, signal)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(atPath: socket)
        return Self.launchContainerd(directory: directory, socket: socket, configPath: configPath)
    }

    /// Starts libvirtd again after a test killed it, the way this host runs it (systemd, or
    /// `.ci/run`'s `tini -s -- libvirtd`), and waits until it answers.
    static func restartLibvirtd() -> String? {
        if FileManager.default.fileExists(atPath: "/run/systemd/system") {
            let result = run("/bin/systemctl", ["restart", "libvirtd"])
            if result.status != 0 { return "systemctl restart libvirtd: \(result.output)" }
        } else {
            // Only live processes count: a killed one may linger as a zombie where PID 1 does not reap.
            _ = run("/usr/bin/pkill", ["-x", "libvirtd"])
            let gone = "for i in $(seq 100); do pgrep -x -r R,S,D libvirtd >/dev/null || exit 0; sleep 0.1; done; exit 1"
            if run("/bin/sh", ["-c", gone]).status != 0 {
                _ = run("/usr/bin/pkill", ["-9", "-x", "libvirtd"])
                _ = run("/bin/sh", ["-c", gone])
            }
            _ = run(
                "/bin/bash",
                [
                    "-c",
                    "\(closeInheritedDescriptors) mkdir -p /var/log/swiftkata; setsid nohup tini -s -- libvirtd >>/var/log/swiftkata/libvirtd.log 2>&1 < /dev/null &",
                ])
        }
        let deadline = Date().addingTimeInterval(30)
        while run("/usr/bin/virsh", ["-c", "qemu:///system", "version"]).status != 0 {
            guard Date() < deadline else { return "libvirtd did not come back within 30 s" }
            usleep(100_000)
        }
        return nil
    }

    /// bash words (dash refuses descriptors above 9) that close every descriptor above stderr: a daemon started from a test must not
    /// keep the socket Foundation's `Process` watches for its child's end (the wait never ends).
    private static let closeInheritedDescriptors =
        #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null; done;"#

    /// Starts virtlogd again after a test killed it (systemd, or `virtlogd -d`).
    static func startVirtlogd() -> String? {
        // A killed virtlogd may linger as a zombie until PID 1 reaps it: only a live one counts.
        if run("/usr/bin/pgrep", ["-x", "-r", "R,S,D", "virtlogd"]).status == 0 { return nil }
        let result =
            FileManager.default.fileExists(atPath: "/run/systemd/system")
            ? run("/bin/systemctl", ["restart", "virtlogd"])
            : run("/bin/bash", ["-c", "\(closeInheritedDescriptors) exec /usr/sbin/virtlogd -d < /dev/null > /dev/null 2>&1"])
        return result.status == 0 ? nil : "starting virtlogd: \(result.output)"
    }

    /// Where the shim of container `id` listens: containerd's `/run/containerd/s/<sha256 of
    /// "<containerd address>/<namespace>/<id>">` (a pod's later containers use the sandbox's).
    func shimSocket(_ id: String) -> String {
        let digest = Self.run("/bin/sh", ["-c", "printf %s \"$0\" | sha256sum", "\(socket)/\(namespace)/\(id)"]).output
        return "/run/containerd/s/\(digest.prefix(64))"
    }

    /// `ctr --address … -n swiftkata-test <arguments>`.
    @discardableResult
    func ctr(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120) -> (status: Int32, output: String) {
        Self.run("/usr/bin/ctr", ["--address", socket, "-n", namespace] + arguments, stdin: stdin, timeout: timeout)
    }

    /// `ctr --address … -n swiftkata-test <arguments>`, started and not waited for (a test acts while
    /// it runs); its output goes to `output`, or nowhere.
    func ctrInBackground(_ arguments: [String], output: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        process.arguments = ["--address", socket, "-n", namespace] + arguments
        if let output {
            process.standardOutput = output
            process.standardError = output
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    /// `ctr run --rm --runtime io.containerd.swiftkata.v2 <image> <id> <command…>`.
    /// The running libvirt domain of pod `id`: `swiftkata-<namespace>-<id>-<16 hex digits>`.
    func domainName(of id: String) -> String? {
        let prefix = "swiftkata-\(namespace)-\(id)-"
        let names = Self.run("/usr/bin/virsh", ["-c", "qemu:///system", "list", "--name"]).output.split(separator: "\n")
        return names.first { $0.hasPrefix(prefix) && $0.dropFirst(prefix.count).count == 16 }.map(String.init)
    }

    func runContainer(_ id: String, _ command: [String], options: [String] = [], stdin: String? = nil) -> (status: Int32, output: String) {
        ctr(["run", "--rm", "--runtime", "io.containerd.swiftkata.v2"] + options + [imageRef, id] + command, stdin: stdin)
    }

    /// Runs a program to completion; stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        do { try process.run() } catch { return (-1, "cannot run \(executable): \(error)") }
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        let timer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
