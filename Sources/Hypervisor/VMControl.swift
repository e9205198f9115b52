import Glibc
import SwiftKataOS

/// Pod domains created and destroyed through `swiftkata-vm`, a short-lived helper next to the shim:
/// the shim daemon lives as long as its pod and so stays without libvirt.so and the ≈ 14 MiB of
/// libraries it loads (gnutls, glib, libxml2, curl, ssh, …). QEMU's exit is watched without libvirt
/// (`QEMUProcess`).
public struct VMControl: Sendable {
    /// The helper's path.
    public var helper: String
    public var uri: String

    /// Why a domain operation failed: the helper's own one-line message, or why it did not run.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// What `create` reports of the started domain.
    public struct Started: Sendable, Equatable {
        public var qemuPID: pid_t
        public var vsockCID: UInt32?
    }

    public static let helperName = "swiftkata-vm"

    /// The helper next to the running executable (how it is installed and built), else in
    /// /usr/local/bin or /usr/bin.
    public static func locateHelper(executable: String = currentExecutable()) -> String? {
        locateSibling(helperName, executable: executable)
    }

    /// The program `name` next to the running executable, else in /usr/local/bin or /usr/bin.
    public static func locateSibling(_ name: String, executable: String = currentExecutable()) -> String? {
        var candidates = ["/usr/local/bin/\(name)", "/usr/bin/\(name)"]
        if let slash = executable.lastIndex(of: "/") { candidates.insert("\(executable[..<slash])/\(name)", at: 0) }
        return candidates.first { access($0, X_OK) == 0 }
    }

    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    public init(helper: String, uri: String) {
        self.helper = helper
        self.uri = uri
    }

    /// Starts the transient domain `name` described by `xml` (replacing a stale one). The XML goes to
    /// the helper on its stdin: no file anyone else could change between writing and reading.
    public func create(name: String, xml: String) throws(Failure) -> Started {
        let output = try run(["create", "--uri", uri, "--name", name, "--xml", "-"], standardInput: Array(xml.utf8))
        let fields = Self.fields(output)
        guard let pidText = fields["qemu_pid"], let pid = pid_t(pidText), pid > 0 else {
            throw Failure(description: "\(Self.helperName) create printed no QEMU pid: \(output.prefix(200))")
        }
        return Started(qemuPID: pid, vsockCID: fields["vsock_cid"].flatMap { UInt32($0) })
    }

    /// Asks the running domain's guest to have `pluggedMiB` of its virtio-mem device plugged; the
    /// guest plugs or unplugs blocks towards it on its own.
    public func resize(name: String, pluggedMiB: Int) throws(Failure) {
        let output = try run(["resize", "--uri", uri, "--name", name, "--plugged-mib", "\(pluggedMiB)"])
        guard Self.fields(output)["plugged_mib"].flatMap({ Int($0) }) == pluggedMiB else {
            throw Failure(description: "\(Self.helperName) resize printed no size: \(output.prefix(200))")
        }
    }

    /// Attaches the host block device `source` to the running domain as a virtio-blk disk the guest
    /// finds by `serial`.
    public func attachDisk(name: String, source: String, serial: String, readOnly: Bool) throws(Failure) {
        _ = try run(["attach-disk", "--uri", uri, "--name", name, "--source", source, "--serial", serial] + (readOnly ? ["--readonly"] : []))
    }

    /// Asks the running domain to release the disk with `serial`.
    public func detachDisk(name: String, serial: String) throws(Failure) {
        _ = try run(["detach-disk", "--uri", uri, "--name", name, "--serial", serial])
    }

    /// `key=value` pairs of the helper's output.
    private static func fields(_ output: String) -> [Substring: Substring] {
        var fields: [Substring: Substring] = [:]
        for pair in output.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }

    /// Destroys the domain `name` and removes libvirt's logs of it; a domain that does not exist is
    /// not an error.
    public func destroy(name: String) throws(Failure) {
        _ = try run(["destroy", "--uri", uri, "--name", name])
    }

    /// The end of libvirt's QEMU log of domain `name` (QEMU's own messages), when there is one here.
    public func logTail(name: String) -> String? {
        DomainLogs.directory(uri: uri).flatMap { DomainLogs.tail(of: name, in: $0) }
    }

    private func run(_ arguments: [String], standardInput: [UInt8]? = nil) throws(Failure) -> String {
        let result: HostCommand
        do { result = try HostCommand.run(helper, arguments, standardInput: standardInput, timeoutMilliseconds: 60_000) } catch {
            throw Failure(description: "\(error)")
        }
        guard result.status == 0 else {
            let operation = "\(Self.helperName) \(arguments.first ?? "")"
            // A helper killed by a signal (128 + n) said nothing: name it, and the signal.
            if result.status > 128, result.standardError.isEmpty {
                throw Failure(description: "\(operation) was killed by signal \(result.status - 128)")
            }
            let message = result.standardError.split(separator: "\n").last.map(String.init) ?? "\(operation): exit status \(result.status)"
            throw Failure(description: message)
        }
        return result.standardOutput
    }
}
