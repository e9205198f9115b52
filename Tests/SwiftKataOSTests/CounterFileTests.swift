import Foundation
import Glibc
import Testing

@testable import SwiftKataOS

struct CounterFileTests {
    @Test func countersAddUpAcrossWritersAndIgnoreGarbage() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-counters-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = CounterFile(path: directory.appendingPathComponent("node-counters").path)
        #expect(try file.read().isEmpty)
        try file.add("pods_started")
        try file.add("pods_started", 2)
        try file.add("boot_failures:host")
        // A line that is not `name value` is skipped, not trusted.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file.path))
        handle.seekToEndOfFile()
        handle.write("garbage line here\nbad$name 3\n".data(using: .utf8)!)
        try handle.close()
        #expect(try file.read() == ["pods_started": 3, "boot_failures:host": 1])
        #expect(throws: SystemError.self) { try file.add("not a name") }
        // Concurrent writers (each add locks the file) lose nothing.
        DispatchQueue.concurrentPerform(iterations: 50) { _ in try? file.add("warm_pool_hits") }
        #expect(try file.read()["warm_pool_hits"] == 50)
        var info = stat()
        #expect(stat(file.path, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test func aLinkInPlaceOfTheFileIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-counters-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("target").path
        let link = directory.appendingPathComponent("node-counters").path
        #expect(symlink(target, link) == 0)
        #expect(throws: SystemError.self) { try CounterFile(path: link).add("pods_started") }
        #expect(access(target, F_OK) != 0)
    }
}
