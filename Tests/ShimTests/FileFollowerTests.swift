import Foundation
import Testing

@testable import Shim

/// The console follower: new complete lines only, across virtlogd's rotation.
@Suite struct FileFollowerTests {
    @Test func readsNewLinesAndFollowsARotation() throws {
        let directory = NSTemporaryDirectory() + "swiftkata-follower-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/console.log"
        var follower = FileFollower(path: path)
        #expect(follower.newLines(maxLineBytes: 100).isEmpty, "no file yet")
        FileManager.default.createFile(atPath: path, contents: nil)
        let file = try #require(FileHandle(forWritingAtPath: path))
        file.write(Data("[    0.1] booting\nagent: listen".utf8))
        #expect(follower.newLines(maxLineBytes: 100) == ["[    0.1] booting"])
        file.write(Data("ing\n".utf8))
        #expect(follower.newLines(maxLineBytes: 100) == ["agent: listening"])
        file.write(Data("last line of the old file\n".utf8))
        try file.close()
        // virtlogd's rotation: the file moves aside and a new one takes its name.
        try FileManager.default.moveItem(atPath: path, toPath: "\(path).0")
        try Data("first line of the new file\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(follower.newLines(maxLineBytes: 100) == ["last line of the old file", "first line of the new file"])
        try Data(String(repeating: "x", count: 300).utf8).write(to: URL(fileURLWithPath: "\(path).tmp"))
        #expect(follower.newLines(maxLineBytes: 10).isEmpty)
    }
}
