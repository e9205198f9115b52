/// How one check came out. `fail` means pods cannot run; `warn` means they can, with a caveat.
public enum CheckStatus: String, Sendable, Equatable {
    case pass, fail, warn
}

/// One line of swiftkata-check's report: what was checked, what was found and, unless it passed,
/// one concrete command or setting that fixes it.
public struct CheckResult: Sendable, Equatable {
    /// A stable identifier, e.g. `kvm-boot`.
    public var name: String
    public var status: CheckStatus
    /// What was found.
    public var detail: String
    /// How to fix a failure or warning; empty when the check passed.
    public var fix: String

    public init(name: String, status: CheckStatus, detail: String, fix: String = "") {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }

    static func pass(_ name: String, _ detail: String) -> CheckResult {
        CheckResult(name: name, status: .pass, detail: detail)
    }

    static func warn(_ name: String, _ detail: String, fix: String) -> CheckResult {
        CheckResult(name: name, status: .warn, detail: detail, fix: fix)
    }

    static func fail(_ name: String, _ detail: String, fix: String) -> CheckResult {
        CheckResult(name: name, status: .fail, detail: detail, fix: fix)
    }
}
