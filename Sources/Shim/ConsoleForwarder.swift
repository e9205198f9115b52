import Glibc
import Logging
import SwiftKataOS

/// With `runtime.debug`, the guest's console lines (kernel and agent) go into containerd's log with
/// the pod's id, at most `linesPerSecond` a second (a chatty guest cannot flood the node's log: the
/// rest is counted and reported). The console file is virtlogd's, in the root-only pod directory;
/// it is followed across virtlogd's rotation (a new inode at the same path).
final class ConsoleForwarder: Sendable {
    static let linesPerSecond = 20
    static let pollInterval: Duration = .milliseconds(250)
    static let maxLineBytes = 1024

    private let task: Task<Void, Never>

    init(path: String, podID: String, logger: Logger) {
        task = Task {
            var follower = FileFollower(path: path)
            var window = ContinuousClock.now
            var sentInWindow = 0
            var suppressed = 0
            while !Task.isCancelled {
                for line in follower.newLines(maxLineBytes: Self.maxLineBytes) {
                    let now = ContinuousClock.now
                    if now - window >= .seconds(1) {
                        if suppressed > 0 {
                            logger.debug("guest console: lines suppressed", metadata: ["pod": "\(podID)", "suppressed": "\(suppressed)"])
                        }
                        window = now
                        sentInWindow = 0
                        suppressed = 0
                    }
                    guard sentInWindow < Self.linesPerSecond else {
                        suppressed += 1
                        continue
                    }
                    sentInWindow += 1
                    logger.debug("guest console", metadata: ["pod": "\(podID)", "line": "\(line)"])
                }
                try? await Task.sleep(for: Self.pollInterval)
            }
            follower.close()
        }
    }

    func stop() { task.cancel() }
}

/// Reads the lines appended to a file since the last call, reopening it when it was replaced.
struct FileFollower {
    let path: String
    private var fd: CInt = -1
    private var inode: ino_t = 0
    private var pending: [UInt8] = []

    init(path: String) { self.path = path }

    /// Complete lines written since the last call (a partial last line waits for its newline).
    mutating func newLines(maxLineBytes: Int) -> [String] {
        var info = stat()
        if stat(path, &info) == 0, info.st_ino != inode || fd < 0 {
            if fd >= 0 { drain(into: &pending) }  // the rotated file's last lines first
            if fd >= 0 { Glibc.close(fd) }
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
            inode = fd >= 0 ? info.st_ino : 0
        }
        if fd >= 0 { drain(into: &pending) }
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[..<newline].prefix(maxLineBytes), as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        if pending.count > maxLineBytes {
            lines.append(String(decoding: pending.prefix(maxLineBytes), as: UTF8.self))
            pending.removeAll()
        }
        return lines
    }

    /// Closes the file: the follow is over.
    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        inode = 0
    }

    private func drain(into buffer: inout [UInt8]) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        for _ in 0..<64 {  // at most 1 MiB a call
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { return }
            buffer.append(contentsOf: chunk[0..<count])
        }
    }
}
