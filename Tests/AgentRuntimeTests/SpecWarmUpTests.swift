import Testing

@testable import AgentRuntime

@Suite struct SpecWarmUpTests {
    @Test func theWarmUpSpecDecodesPlansAndCompiles() throws {
        try SpecWarmUp.run()
        let spec = try OCISpec.decode(SpecWarmUp.sample.utf8)
        // The parts whose first use costs the most are in it: process, mounts, resources, seccomp.
        #expect(spec.process?.capabilities?.bounding?.isEmpty == false)
        #expect(spec.mounts?.count == 7)
        #expect(spec.linux?.resources?.memory?.limit == 134_217_728)
        #expect(spec.linux?.seccomp?.syscalls?.contains { $0.args?.isEmpty == false } == true)
        #expect(spec.linux?.devices?.count == 1)
    }
}
