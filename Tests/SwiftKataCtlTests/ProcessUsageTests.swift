import Glibc
import Testing

@testable import SwiftKataCtl

struct ProcessUsageTests {
    @Test func readsRSSAndPSSFromSmapsRollupAndCPUFromStat() throws {
        let rollup = """
            00400000-7ffd0000 ---p 00000000 00:00 0                          [rollup]
            Rss:              131072 kB
            Pss:              120000 kB
            Pss_Anon:          90000 kB
            """
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (qemu-system x86)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0"
        let usage = try #require(ProcessUsage.parse(smapsRollup: rollup, stat: stat, ticksPerSecond: 100))
        #expect(usage.rssBytes == 131072 * 1024)
        #expect(usage.pssBytes == 120000 * 1024)
        #expect(usage.cpuSeconds == 3.0)
    }

    @Test func aTruncatedStatIsNoUsage() {
        #expect(ProcessUsage.parse(smapsRollup: "Rss: 1 kB\nPss: 1 kB\n", stat: "1 (x) S 1 2", ticksPerSecond: 100) == nil)
    }

    @Test func thisProcessHasUsage() throws {
        let usage = try #require(ProcessUsage.of(pid: getpid()))
        #expect(usage.rssBytes > 0 && usage.pssBytes > 0)
    }
}
