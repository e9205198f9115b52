import AgentRuntime
import Testing

@Suite("Seccomp profiles → BPF")
struct SeccompCompilerTests {
    static let denyMkdir = OCISeccomp(
        defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        syscalls: [
            .init(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: nil),
            .init(names: ["personality"], action: "SCMP_ACT_ALLOW", errnoRet: nil, args: nil),
            .init(names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: [.init(index: 0, value: 40, valueTwo: nil, op: "SCMP_CMP_EQ")]),
            .init(names: ["no_such_syscall_anywhere"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: nil),
        ])

    @Test func compilesAProfileToAWholeNumberOfBPFInstructions() throws {
        let program = try SeccompCompiler.compile(Self.denyMkdir)
        #expect(program.count >= 8 * 4)
        #expect(program.count % 8 == 0)
    }

    @Test(arguments: [
        (
            OCISeccomp(defaultAction: "SCMP_ACT_FLY", defaultErrnoRet: nil, architectures: nil, syscalls: nil),
            "linux.seccomp.defaultAction: unsupported seccomp action SCMP_ACT_FLY"
        ),
        (
            OCISeccomp(defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: ["SCMP_ARCH_PDP11"], syscalls: nil),
            "linux.seccomp.architectures: unknown architecture SCMP_ARCH_PDP11"
        ),
        (
            OCISeccomp(
                defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: nil,
                syscalls: [.init(names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: [.init(index: 9, value: 0, valueTwo: nil, op: "SCMP_CMP_EQ")])]
            ),
            "linux.seccomp.syscalls[0].args: argument index 9 is over 5"
        ),
        (
            OCISeccomp(
                defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: nil,
                syscalls: [
                    .init(names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: [.init(index: 0, value: 0, valueTwo: nil, op: "SCMP_CMP_ABOUT")])
                ]),
            "linux.seccomp.syscalls[0].args: unknown operator SCMP_CMP_ABOUT"
        ),
    ])
    func badProfilesNameTheField(_ profile: OCISeccomp, _ message: String) {
        let error = #expect(throws: SpecError.self) { try SeccompCompiler.compile(profile) }
        #expect(error?.description == message)
    }
}
