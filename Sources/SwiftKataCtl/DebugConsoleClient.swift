import Dispatch
import FoundationEssentials
import Glibc
import OperatorAPI
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// `swiftkata-ctl console <pod>`: the operator's terminal joined to a shell in the pod VM's own root,
/// through the pod's shim (which relays to the guest agent). The local terminal is raw while the
/// shell runs, window size changes follow, and the shell's exit status is returned.
public enum DebugConsoleClient {
    public static func run(socket: String) async throws -> Int32 {
        let client: TTRPCClient
        do { client = try await TTRPCClient.connect(unixSocketPath: socket) } catch {
            throw CtlError("cannot reach the pod's shim at \(socket): \(error)")
        }
        defer { Task { await client.close() } }
        let shim = Swiftkata_Operator_V1_PodOperatorClient(client)
        let size = terminalSize()
        let opened: Swiftkata_Operator_V1_OpenConsoleResponse
        do {
            opened = try await shim.openConsole(
                .with {
                    $0.rows = UInt32(size.rows)
                    $0.columns = UInt32(size.columns)
                }, timeout: .seconds(30))
        } catch let error as TTRPCError {
            throw CtlError("the debug console did not open: \(error.message)")
        }
        let consoleID = opened.consoleID
        let terminal = RawTerminal.enter()
        defer { terminal?.restore() }

        let resizes = watchWindowSize { rows, columns in
            Task {
                _ = try? await shim.resizeConsole(
                    .with {
                        $0.consoleID = consoleID
                        $0.rows = UInt32(rows)
                        $0.columns = UInt32(columns)
                    }, timeout: .seconds(5))
            }
        }
        defer { resizes.cancel() }
        let input = Task {
            while !Task.isCancelled {
                let chunk = await onBlockingThread { readChunk(fd: 0, limit: 4096) }
                if chunk.isEmpty { return }  // end of our input: the shell goes on until it exits
                do {
                    _ = try await shim.writeConsole(
                        .with {
                            $0.consoleID = consoleID
                            $0.data = Data(chunk)
                        }, timeout: .seconds(30))
                } catch { return }
            }
        }
        defer { input.cancel() }
        while true {
            let output: Swiftkata_Operator_V1_ReadConsoleResponse
            do { output = try await shim.readConsole(.with { $0.consoleID = consoleID }) } catch { break }
            if !output.data.isEmpty { try? writeAll(fd: 1, Array(output.data)) }
            if output.eof { break }
        }
        let closed = try await shim.closeConsole(.with { $0.consoleID = consoleID }, timeout: .seconds(30))
        return Int32(closed.exitStatus)
    }

    /// The local terminal's size; 24 x 80 when stdout is not a terminal.
    static func terminalSize() -> (rows: UInt16, columns: UInt16) {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return (24, 80) }
        return (size.ws_row, size.ws_col)
    }

    /// Calls `changed` with the new size on every SIGWINCH.
    static func watchWindowSize(_ changed: @escaping @Sendable (UInt16, UInt16) -> Void) -> any DispatchSourceSignal {
        signal(SIGWINCH, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
        source.setEventHandler {
            let size = terminalSize()
            changed(size.rows, size.columns)
        }
        source.resume()
        return source
    }
}

/// The local terminal in raw mode (keys go to the remote shell as typed, ^C included), restored after.
struct RawTerminal {
    private let saved: termios

    /// nil when stdin is not a terminal (input piped in): nothing to change.
    static func enter() -> RawTerminal? {
        guard isatty(0) == 1 else { return nil }
        var attributes = termios()
        guard tcgetattr(0, &attributes) == 0 else { return nil }
        let saved = attributes
        cfmakeraw(&attributes)
        guard tcsetattr(0, TCSANOW, &attributes) == 0 else { return nil }
        return RawTerminal(saved: saved)
    }

    func restore() {
        var attributes = saved
        _ = tcsetattr(0, TCSANOW, &attributes)
    }
}
