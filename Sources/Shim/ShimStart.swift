import ContainerdAPI
import Glibc
import SwiftKataConfig
import SwiftKataOS
import SwiftProtobuf

/// `containerd-shim-swiftkata-v2 … start`: finds or starts the pod's shim daemon and prints its address.
///
/// containerd reads stdout and stderr together as the address, so nothing else may be printed; the
/// listener is bound before the address is printed (containerd dials once, at once) and handed to
/// the daemon as fd 3.
enum ShimStart {
    /// How long a pod's first container waits for the departing shim of an earlier container with
    /// the same id (destroying a VM takes well under a second).
    static let departingShimTimeout: Duration = .seconds(30)

    static func run(_ arguments: ShimArguments) throws(ShimError) -> String {
        // The runtime options (containerd's `options` table) may name the configuration file; the
        // daemon gets it as $SWIFTKATA_CONFIG. A bad configuration fails here, where containerd
        // shows the message to whoever ran the container.
        let options = RuntimeOptions(anyBytes: (try? readToEnd(fd: STDIN_FILENO, limit: 1 << 20)) ?? [])
        let bundle = currentDirectory()
        let configPathOption = try checkConfiguration(options, bundle: bundle, environment: processEnvironment())
        let spec = try BundleSpec.load(bundle: bundle)
        let podID = spec.podID(containerID: arguments.id)
        let address = ShimAddress(containerdAddress: arguments.address, namespace: arguments.namespace, groupID: podID)
        try ShimError.system("creating a state directory") { try makeDirectories(ShimAddress.socketDirectory, mode: 0o711) }

        switch spec.podRole {
        case .container(let sandboxID):
            guard UnixSocket.isServing(path: address.socketPath) else {
                throw .failedPrecondition("pod sandbox \(sandboxID) has no running swiftkata shim (its sandbox container must be started first)")
            }
            // The pod's shim is running: this container joins it.
            try address.save(bundle: bundle)
            return address.uri
        case .sandbox:
            // containerd never starts a live id twice, so a shim still serving this address belongs to
            // a container of the same id that was just deleted (`ctr run --rm` in a loop): its daemon
            // answered Shutdown and is destroying its VM. Both would use the same domain name and pod
            // directory, so the new pod waits for the old one to be gone.
            guard UnixSocket.waitUntilDeparted(path: address.socketPath, timeout: departingShimTimeout) else {
                throw .failedPrecondition(
                    "the previous swiftkata shim of \(arguments.id) is still shutting down after \(departingShimTimeout); try again once it has exited")
            }
        }
        unlink(address.socketPath)  // a dead shim's socket
        let listener = try UnixSocket.listen(path: address.socketPath)
        defer { close(listener) }
        do {
            try address.save(bundle: bundle)
            try spawnDaemon(arguments, listener: listener, configPath: configPathOption)
        } catch {
            unlink(address.socketPath)
            unlink(ShimAddress.fileInBundle(bundle))
            throw error
        }
        return address.uri
    }

    /// Loads the configuration the runtime options select, so that a bad one fails here, where
    /// containerd shows the message; returns the path the daemon is to read (nil: its default).
    /// containerd 1.7's `ConfigBody` carries the file's text: it is kept in the bundle, so errors name
    /// a file and a line, and the daemon reads it like any configuration file.
    static func checkConfiguration(_ options: RuntimeOptions, bundle: String, environment: [String: String]) throws(ShimError) -> String? {
        var configPathOption = options.configPath
        if let body = options.configBody {
            let path = RuntimeOptions.configBodyFile(bundle: bundle)
            try ShimError.system("writing a state file") { try writeFileAtomically(path, Array(body.utf8), mode: 0o600) }
            configPathOption = path
        }
        let (configPath, mayBeMissing) = Configuration.resolvePath(runtimeOptionPath: configPathOption, environment: environment)
        do { _ = try Configuration.load(path: configPath, mayBeMissing: mayBeMissing) } catch {
            throw .invalidArgument("swiftkata configuration: \(error)")
        }
        return configPathOption
    }

    /// Starts the daemon: same binary, no action, listener on fd 3, stdio on /dev/null (containerd
    /// would otherwise wait on the inherited pipe), a process group of its own.
    static func spawnDaemon(_ arguments: ShimArguments, listener: CInt, configPath: String?) throws(ShimError) {
        var daemonArguments = ["containerd-shim-swiftkata-v2", "-namespace", arguments.namespace, "-id", arguments.id, "-address", arguments.address]
        if !arguments.publishBinary.isEmpty { daemonArguments += ["-publish-binary", arguments.publishBinary] }
        if arguments.debug { daemonArguments.append("-debug") }

        var environment = processEnvironment()
        if let configPath, !configPath.isEmpty { environment[Configuration.pathEnvironmentVariable] = configPath }
        var options = ProcessSpawn.Options()
        options.environment = environment.map { "\($0.key)=\($0.value)" }
        options.newProcessGroup = true
        options.fileActions = [
            .duplicate(listener, to: 3), .open(STDIN_FILENO, path: "/dev/null", flags: O_RDONLY),
            .open(STDOUT_FILENO, path: "/dev/null", flags: O_WRONLY), .open(STDERR_FILENO, path: "/dev/null", flags: O_WRONLY),
        ]
        try ShimError.system("starting the shim daemon") {
            _ = try ProcessSpawn.spawn("/proc/self/exe", argv: daemonArguments, options: options)
        }
    }
}

func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
