import Glibc
import SwiftKataOS
import SystemPackage
import Testing

@Suite struct ProcessSpawnTests {
    @Test func runsACommandAndCapturesBothStreams() throws {
        let result = try HostCommand.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(result.status == 3)
        #expect(result.standardOutput == "out\n")
        #expect(result.standardError == "err\n")
    }

    @Test func aMissingExecutableIsAnErrorWithErrno() {
        #expect(throws: SystemError("spawn", path: "/nonexistent/tool", errno: .noSuchFileOrDirectory)) {
            try ProcessSpawn.spawn("/nonexistent/tool", argv: ["tool"])
        }
    }

    @Test func aSignalDeathReadsAsInAShell() throws {
        let result = try HostCommand.run("/bin/sh", ["-c", "kill -9 $$"])
        #expect(result.status == 128 + SIGKILL)
    }
}

@Suite struct BoundedFileTests {
    @Test func refusesAFileOverItsLimit() throws {
        let scratch = try Scratch("bounded")
        try scratch.writeFile("big", String(repeating: "a", count: 100))
        #expect(throws: SystemError("read", path: "\(scratch.path)/big", errno: .fileTooLarge)) {
            try readWholeFile("\(scratch.path)/big", limit: 99)
        }
        #expect(try readWholeFile("\(scratch.path)/big", limit: 100).count == 100)
        #expect(try readFileHead("\(scratch.path)/big", limit: 10).count == 10)
    }

    /// Reads grow from one page to 64 KiB chunks: files around those sizes come back whole and in order.
    @Test(arguments: [0, 1, 4095, 4096, 4097, 12_289, 65_536, 200_003])
    func readsFilesOfEverySizeWhole(size: Int) throws {
        let scratch = try Scratch("chunked-\(size)")
        let text = String((0..<size).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
        try scratch.writeFile("file", text)
        #expect(try readWholeFile("\(scratch.path)/file", limit: size) == Array(text.utf8))
        #expect(try readFileHead("\(scratch.path)/file", limit: 1 << 20) == Array(text.utf8))
        #expect(try readFileHead("\(scratch.path)/file", limit: size / 2) == Array(text.utf8.prefix(size / 2)))
        if size > 0 {
            #expect(throws: SystemError("read", path: "\(scratch.path)/file", errno: .fileTooLarge)) {
                try readWholeFile("\(scratch.path)/file", limit: size - 1)
            }
        }
    }

    @Test func procKeyValuesReadMeminfoAndStatusLines() {
        let text = "MemTotal:         245684 kB\nMemFree:   216432 kB\nName:\tswiftkata-agent\nVmRSS:\t    9300 kB\nbroken line\nHugePages_Total:       0\n"
        let values = ProcKeyValues.parse(Array(text.utf8))
        #expect(values == ["MemTotal": 245684, "MemFree": 216432, "VmRSS": 9300, "HugePages_Total": 0])
        #expect(ProcKeyValues.value("MemFree", in: Array(text.utf8)) == 216432)
        #expect(ProcKeyValues.value("Name", in: Array(text.utf8)) == nil)
        #expect(ProcKeyValues.value("MemTotal", in: []) == nil)
    }

    @Test func noFollowRefusesSymlinksAndFifos() throws {
        let scratch = try Scratch("nofollow")
        try scratch.writeFile("real", "secret")
        try scratch.symlink("link", to: "\(scratch.path)/real")
        #expect(mkfifo("\(scratch.path)/fifo", 0o600) == 0)
        #expect(throws: SystemError.self) { try readWholeFile("\(scratch.path)/link", limit: 100, noFollow: true) }
        #expect(throws: SystemError.self) { try readWholeFile("\(scratch.path)/fifo", limit: 100, noFollow: true) }
        #expect(try readWholeFile("\(scratch.path)/real", limit: 100, noFollow: true) == Array("secret".utf8))
    }

    @Test func atomicWritesDoNotFollowAPlantedTemporaryName() throws {
        let scratch = try Scratch("atomic")
        try writeFileAtomically("\(scratch.path)/state.json", Array("{}".utf8), mode: 0o600)
        var info = stat()
        #expect(stat("\(scratch.path)/state.json", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(directoryEntries(scratch.path) == ["state.json"])
    }
}

@Suite struct FileTailTests {
    @Test func readsTheEndOnlyAndRefusesLinksAndFifos() throws {
        let scratch = try Scratch("tail")
        try scratch.writeFile("log", String(repeating: "a", count: 5000) + "last line\n")
        #expect(String(decoding: try readFileTail("\(scratch.path)/log", limit: 10), as: UTF8.self) == "last line\n")
        #expect(try readFileTail("\(scratch.path)/log", limit: 1 << 20).count == 5010)
        try scratch.symlink("secret", to: "\(scratch.path)/log")
        #expect(throws: SystemError.self) { try readFileTail("\(scratch.path)/secret", limit: 10) }
        #expect(mkfifo("\(scratch.path)/fifo", 0o600) == 0)
        #expect(throws: SystemError.self) { try readFileTail("\(scratch.path)/fifo", limit: 10) }
    }
}
