import ContainerdAPI
import Glibc
import SwiftKataOS
import SwiftProtobuf

/// Entry point of `containerd-shim-swiftkata-v2`: `start`, `delete`, or the daemon.
public enum ShimMain {
    public static let version = "0.1.0"

    public static func run(arguments: [String]) async -> Int32 {
        let parsed: ShimArguments
        do { parsed = try ShimArguments(parsing: arguments) } catch {
            printError("containerd-shim-swiftkata-v2: \(error)")
            return 2
        }
        if parsed.version {
            print("containerd-shim-swiftkata-v2 version \(version) (runtime io.containerd.swiftkata.v2)")
            return 0
        }
        switch parsed.action {
        case .start:
            do {
                let address = try ShimStart.run(parsed)
                writeAll(STDOUT_FILENO, Array(address.utf8))
                return 0
            } catch {
                printError("swiftkata: \(error)")
                return 1
            }
        case .delete:
            let response = ShimDelete.run(parsed) { printError("swiftkata delete \(parsed.id): \($0)") }
            writeAll(STDOUT_FILENO, (try? response.serializedBytes()) ?? [])
            return 0
        case .daemon:
            return await ShimDaemon.run(parsed)
        case .drainPool:
            return WarmPool.drainCommand()
        }
    }

    static func printError(_ message: String) {
        writeAll(STDERR_FILENO, Array((message + "\n").utf8))
    }

    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) {
        try? SwiftKataOS.writeAll(fd: fd, bytes)
    }
}
