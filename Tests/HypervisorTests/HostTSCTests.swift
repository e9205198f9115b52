import Foundation
import Testing

@testable import Hypervisor

@Suite struct HostTSCTests {
    /// The host's TSC rate is measured, plausible, and kept: a second caller gets the same value
    /// (it is part of every TCG domain's XML, and so of the warm pool's key).
    @Test func theRateIsMeasuredOnceAndKept() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-tsc-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try #require(HostTSC.kilohertz(cacheDirectory: directory))
        #expect(HostTSC.isPlausible(first))
        #expect(try String(contentsOfFile: "\(directory)/host-tsc-khz", encoding: .utf8) == "\(first)\n")
        #expect(HostTSC.kilohertz(cacheDirectory: directory) == first)
        // A fresh measurement agrees with the kept one within 0.5 %.
        let again = try #require(HostTSC.measure())
        #expect(max(again, first) - min(again, first) <= first / 200)
        // A damaged cache is measured anew, not trusted.
        try "garbage".write(toFile: "\(directory)/host-tsc-khz", atomically: true, encoding: .utf8)
        let remeasured = try #require(HostTSC.kilohertz(cacheDirectory: directory))
        #expect(max(remeasured, first) - min(remeasured, first) <= first / 200)
    }
}
