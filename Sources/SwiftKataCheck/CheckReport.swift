import Hypervisor

/// All checks, and what pods on this host will get.
public struct CheckReport: Sendable {
    public var checks: [CheckResult]
    /// The accelerator pods will use.
    public var accelerator: VMDescription.Accelerator
    /// How the shim will reach each pod's agent.
    public var transport: ResolvedAgentTransport

    public init(checks: [CheckResult], accelerator: VMDescription.Accelerator, transport: ResolvedAgentTransport) {
        self.checks = checks
        self.accelerator = accelerator
        self.transport = transport
    }

    /// Pods can run (perhaps slowly, with warnings): nothing failed.
    public var ok: Bool { !checks.contains { $0.status == .fail } }

    /// The process exit status: 0 when pods can run, 1 when a check failed.
    public var exitStatus: Int32 { ok ? 0 : 1 }

    public func check(named name: String) -> CheckResult? { checks.first { $0.name == name } }

    /// One line per check, then a one-line summary.
    public var humanReadable: String {
        let width = checks.map(\.name.count).max() ?? 0
        var lines = checks.map { check in
            let name = check.name + String(repeating: " ", count: width - check.name.count)
            let fix = check.fix.isEmpty ? "" : " — fix: \(check.fix)"
            return "\(check.status.rawValue.uppercased())  \(name)  \(check.detail)\(fix)"
        }
        lines.append(summary)
        return lines.joined(separator: "\n")
    }

    /// "pods can run: accelerator tcg (slow), agent transport virtio-serial" or "pods cannot run: 2 checks failed (…)".
    public var summary: String {
        let failed = checks.filter { $0.status == .fail }
        guard failed.isEmpty else {
            return "pods cannot run: \(failed.count) check\(failed.count == 1 ? "" : "s") failed (\(failed.map(\.name).joined(separator: ", ")))"
        }
        let warnings = checks.count { $0.status == .warn }
        return "pods can run: accelerator \(accelerator.rawValue)\(accelerator == .tcg ? " (slow)" : ""), agent transport \(transport.rawValue)"
            + (warnings == 0 ? "" : " (\(warnings) warning\(warnings == 1 ? "" : "s"))")
    }

    /// `{"ok": …, "checks": [{"name", "status", "detail", "fix"}], "accelerator": …, "transport": …}`, keys in that order.
    public var json: String {
        let checks = checks.map { check in
            "{\"name\":\(jsonString(check.name)),\"status\":\"\(check.status.rawValue)\",\"detail\":\(jsonString(check.detail)),\"fix\":\(jsonString(check.fix))}"
        }
        return
            "{\"ok\":\(ok),\"checks\":[\(checks.joined(separator: ","))],\"accelerator\":\"\(accelerator.rawValue)\",\"transport\":\"\(transport.rawValue)\"}"
    }
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"", "\\": result += "\\\(scalar)"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20: result += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
