import Foundation
import Hypervisor
import Testing

@Suite struct DomainLogsTests {
    @Test func directoryFollowsTheURI() {
        #expect(DomainLogs.directory(uri: "qemu:///system", environment: [:]) == "/var/log/libvirt/qemu")
        #expect(DomainLogs.directory(uri: "qemu:///session", environment: ["HOME": "/home/op"]) == "/home/op/.cache/libvirt/qemu/log")
        #expect(DomainLogs.directory(uri: "qemu:///session", environment: ["HOME": "/home/op", "XDG_CACHE_HOME": "/c"]) == "/c/libvirt/qemu/log")
        #expect(DomainLogs.directory(uri: "qemu:///session", environment: [:]) == nil)
        #expect(DomainLogs.directory(uri: "qemu+ssh://host/system", environment: [:]) == nil)
    }

    @Test func onlyTheDomainsOwnLogsAreNamed() {
        let entries = [
            "swiftkata-k8s.io-abc.log", "swiftkata-k8s.io-abc-fs0-virtiofsd.log", "swiftkata-k8s.io-abc-fs12-virtiofsd.log",
            "swiftkata-k8s.io-abc.log.1", "swiftkata-k8s.io-abcd.log", "swiftkata-k8s.io-abcd-fs0-virtiofsd.log",
            "swiftkata-k8s.io-abc-fs-virtiofsd.log", "swiftkata-k8s.io-abc-fsx-virtiofsd.log", "other.log",
        ]
        #expect(
            DomainLogs.names(of: "swiftkata-k8s.io-abc", among: entries).sorted() == [
                "swiftkata-k8s.io-abc-fs0-virtiofsd.log", "swiftkata-k8s.io-abc-fs12-virtiofsd.log", "swiftkata-k8s.io-abc.log",
            ])
    }

    @Test func removeAndTail() throws {
        let directory = NSTemporaryDirectory() + "swiftkata-domainlogs-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let long = (1...2000).map { "2026-11-29 12:00:\($0): message" }.joined(separator: "\n") + "\n-sandbox on \\\n-msg timestamp=on\n"
        try long.write(toFile: "\(directory)/pod-a.log", atomically: true, encoding: .utf8)
        try "fs\n".write(toFile: "\(directory)/pod-a-fs0-virtiofsd.log", atomically: true, encoding: .utf8)
        try "keep\n".write(toFile: "\(directory)/pod-ab.log", atomically: true, encoding: .utf8)

        #expect(DomainLogs.tail(of: "pod-a", in: directory, lines: 2) == "2026-11-29 12:00:1999: message | 2026-11-29 12:00:2000: message")
        #expect(DomainLogs.tail(of: "pod-missing", in: directory) == nil)
        #expect(DomainLogs.remove(domain: "pod-a", in: directory) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["pod-ab.log"])
        #expect(DomainLogs.remove(domain: "pod-a", in: directory) == [])  // nothing left to remove
    }
}
