import CLinuxSys
import CSeccomp
import Glibc

/// Compiles an OCI seccomp profile into a classic BPF program with libseccomp, in the agent (the
/// parent), so the spawned child only has to install it.
public enum SeccompCompiler {
    /// libseccomp action values (the SCMP_ACT_* macros are not importable).
    static func action(_ name: String, errno errnoValue: UInt32?, defaultErrno: UInt32?, field: String) throws(SpecError) -> UInt32 {
        switch name {
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return 0x0000_0000
        case "SCMP_ACT_KILL_PROCESS": return 0x8000_0000
        case "SCMP_ACT_TRAP": return 0x0003_0000
        case "SCMP_ACT_ERRNO": return 0x0005_0000 | ((errnoValue ?? defaultErrno ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_TRACE": return 0x7ff0_0000 | ((errnoValue ?? defaultErrno ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_LOG": return 0x7ffc_0000
        case "SCMP_ACT_ALLOW": return 0x7fff_0000
        default: throw .invalid(field: field, reason: "unsupported seccomp action \(name)")
        }
    }

    static let architectures: [String: UInt32] = [
        "SCMP_ARCH_X86": 0x4000_0003, "SCMP_ARCH_X86_64": 0xc000_003e, "SCMP_ARCH_X32": 0x4000_003e,
        "SCMP_ARCH_AARCH64": 0xc000_00b7, "SCMP_ARCH_ARM": 0x4000_0028,
    ]

    static let operators: [String: scmp_compare] = [
        "SCMP_CMP_NE": SCMP_CMP_NE, "SCMP_CMP_LT": SCMP_CMP_LT, "SCMP_CMP_LE": SCMP_CMP_LE,
        "SCMP_CMP_EQ": SCMP_CMP_EQ, "SCMP_CMP_GE": SCMP_CMP_GE, "SCMP_CMP_GT": SCMP_CMP_GT,
        "SCMP_CMP_MASKED_EQ": SCMP_CMP_MASKED_EQ,
    ]

    /// Returns the BPF program (an array of `struct sock_filter`) as bytes.
    public static func compile(_ profile: OCISeccomp) throws(SpecError) -> [UInt8] {
        let defaultAction = try action(profile.defaultAction, errno: profile.defaultErrnoRet, defaultErrno: nil, field: "linux.seccomp.defaultAction")
        guard let context = seccomp_init(defaultAction) else {
            throw .invalid(field: "linux.seccomp.defaultAction", reason: "libseccomp refused \(profile.defaultAction)")
        }
        defer { seccomp_release(context) }
        // Seccomp filters are installed without no_new_privs only by privileged processes; leave NNP
        // to the spec (process.noNewPrivileges) instead of libseccomp's default of forcing it.
        seccomp_attr_set(context, SCMP_FLTATR_CTL_NNP, 0)
        for name in profile.architectures ?? [] {
            guard let token = architectures[name] else {
                throw .invalid(field: "linux.seccomp.architectures", reason: "unknown architecture \(name)")
            }
            let result = seccomp_arch_add(context, token)
            guard result == 0 || result == -EEXIST else {
                throw .invalid(field: "linux.seccomp.architectures", reason: "cannot add \(name): errno \(-result)")
            }
        }
        for (index, rule) in (profile.syscalls ?? []).enumerated() {
            let field = "linux.seccomp.syscalls[\(index)]"
            let ruleAction = try action(rule.action, errno: rule.errnoRet, defaultErrno: profile.defaultErrnoRet, field: "\(field).action")
            if ruleAction == defaultAction { continue }  // libseccomp refuses rules that repeat the default
            var comparisons: [scmp_arg_cmp] = []
            for arg in rule.args ?? [] {
                guard let op = operators[arg.op] else { throw .invalid(field: "\(field).args", reason: "unknown operator \(arg.op)") }
                guard arg.index < 6 else { throw .invalid(field: "\(field).args", reason: "argument index \(arg.index) is over 5") }
                comparisons.append(scmp_arg_cmp(arg: arg.index, op: op, datum_a: arg.value, datum_b: arg.valueTwo ?? 0))
            }
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                if number == __NR_SCMP_ERROR { continue }  // unknown on this architecture: skipped, as runc does
                let result = comparisons.withUnsafeBufferPointer {
                    seccomp_rule_add_array(context, ruleAction, number, UInt32($0.count), $0.baseAddress)
                }
                guard result == 0 else {
                    throw .invalid(field: field, reason: "libseccomp refused the rule for \(name): errno \(-result)")
                }
            }
        }
        return try export(context)
    }

    private static func export(_ context: scmp_filter_ctx) throws(SpecError) -> [UInt8] {
        let fd = linux_memfd("seccomp-bpf")
        guard fd >= 0 else { throw .invalid(field: "linux.seccomp", reason: "memfd_create failed: errno \(errno)") }
        defer { close(fd) }
        guard seccomp_export_bpf(context, fd) == 0 else { throw .invalid(field: "linux.seccomp", reason: "exporting the BPF program failed") }
        let size = Int(lseek(fd, 0, SEEK_END))
        guard size > 0, size % 8 == 0, lseek(fd, 0, SEEK_SET) == 0 else {
            throw .invalid(field: "linux.seccomp", reason: "exported BPF program has a bad size \(size)")
        }
        var program = [UInt8](repeating: 0, count: size)
        let read = program.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, size) }
        guard read == size else { throw .invalid(field: "linux.seccomp", reason: "reading the BPF program failed") }
        return program
    }
}
