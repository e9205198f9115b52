import Hypervisor
import SwiftKataOS

/// Runs `executable` with `arguments` and returns its exit status and output (stdout, then stderr);
/// nil when it cannot start or runs longer than `timeoutMilliseconds` (then it is killed).
func runProcess(_ executable: String, _ arguments: [String], timeoutMilliseconds: Int = 5_000) -> CommandOutput? {
    guard let result = try? HostCommand.run(executable, arguments, timeoutMilliseconds: timeoutMilliseconds) else { return nil }
    return CommandOutput(status: result.status, output: result.standardOutput + result.standardError)
}
