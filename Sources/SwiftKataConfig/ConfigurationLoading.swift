import Glibc
import SwiftKataOS

extension Configuration {
    /// Which file to read: the runtime option `ConfigPath` wins, then `$SWIFTKATA_CONFIG`, then the default.
    /// Only the default may be absent (then every default applies).
    public static func resolvePath(runtimeOptionPath: String?, environment: [String: String]) -> (path: String, mayBeMissing: Bool) {
        if let path = runtimeOptionPath, !path.isEmpty { return (path, false) }
        if let path = environment[pathEnvironmentVariable], !path.isEmpty { return (path, false) }
        return (defaultPath, true)
    }

    /// Loads the configuration at `path`; a missing file is an error unless `mayBeMissing`.
    public static func load(path: String, mayBeMissing: Bool = false) throws(ConfigurationError) -> Configuration {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path, limit: 1 << 20) } catch {
            if error.errno == .noSuchFileOrDirectory && mayBeMissing { return Configuration() }
            let message = error.errno == .fileTooLarge ? "larger than 1 MiB" : "cannot \(error.operation): \(error.errno)"
            throw ConfigurationError(path: path, line: nil, key: nil, message: message)
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Parses configuration text; `path` only names the source in errors.
    public static func parse(_ text: String, path: String) throws(ConfigurationError) -> Configuration {
        let document: TOMLDocument
        do {
            document = try TOMLDocument(parsing: text)
        } catch {
            throw ConfigurationError(path: path, line: error.line, key: nil, message: error.message)
        }
        let reader = SectionReader(path: path, document: document)
        var configuration = Configuration()
        try reader.rejectUnknownTables(["", "hypervisor", "agent", "runtime", "pool"])
        try reader.rejectUnknownKeys(in: "", known: [])

        let hypervisorKeys = [
            "libvirt_uri", "accelerator", "machine", "vcpus", "memory_mib", "max_vcpus", "max_memory_mib", "hotplug", "enable_annotations", "kernel", "image",
            "kernel_params", "shared_fs", "virtiofsd", "emulator",
            "free_page_reporting", "tcg_translation_cache_mib", "libvirt_cpu_readback", "allow_unconfined_qemu",
        ]
        try reader.rejectUnknownKeys(in: "hypervisor", known: hypervisorKeys)
        var hypervisor = configuration.hypervisor
        // Local QEMU drivers only: a URI is a command line for libvirt (qemu+ext://…?command= runs a program).
        try reader.string("hypervisor", "libvirt_uri", into: &hypervisor.libvirtURI, allowed: ["qemu:///system", "qemu:///session"])
        try reader.choice("hypervisor", "accelerator", into: &hypervisor.accelerator)
        try reader.string("hypervisor", "machine", into: &hypervisor.machine, allowed: ["pc", "q35", "microvm"])
        try reader.integer("hypervisor", "vcpus", into: &hypervisor.vcpus, range: 1...64)
        try reader.integer("hypervisor", "memory_mib", into: &hypervisor.memoryMiB, range: 64...65536)
        try reader.integer("hypervisor", "max_vcpus", into: &hypervisor.maxVCPUs, range: 0...256)
        try reader.integer("hypervisor", "max_memory_mib", into: &hypervisor.maxMemoryMiB, range: 0...1_048_576)
        try reader.boolean("hypervisor", "hotplug", into: &hypervisor.hotplug)
        try reader.strings(
            "hypervisor", "enable_annotations", into: &hypervisor.enableAnnotations,
            allowed: Configuration.HypervisorSection.annotatableSettings)
        if hypervisor.maxVCPUs > 0 && hypervisor.maxVCPUs < hypervisor.vcpus {
            throw reader.fail("hypervisor", "max_vcpus", "\(hypervisor.maxVCPUs) is below vcpus (\(hypervisor.vcpus))")
        }
        if hypervisor.maxMemoryMiB > 0 && hypervisor.maxMemoryMiB < hypervisor.memoryMiB {
            throw reader.fail("hypervisor", "max_memory_mib", "\(hypervisor.maxMemoryMiB) is below memory_mib (\(hypervisor.memoryMiB))")
        }
        try reader.absolutePath("hypervisor", "kernel", into: &hypervisor.kernel)
        try reader.absolutePath("hypervisor", "image", into: &hypervisor.image)
        try reader.string("hypervisor", "kernel_params", into: &hypervisor.kernelParameters)
        try reader.choice("hypervisor", "shared_fs", into: &hypervisor.sharedFilesystem)
        try reader.absolutePath("hypervisor", "virtiofsd", into: &hypervisor.virtiofsd)
        try reader.absolutePath("hypervisor", "emulator", into: &hypervisor.emulator)
        try reader.boolean("hypervisor", "free_page_reporting", into: &hypervisor.freePageReporting)
        try reader.integer("hypervisor", "tcg_translation_cache_mib", into: &hypervisor.tcgTranslationCacheMiB, range: 0...4096)
        try reader.choice("hypervisor", "libvirt_cpu_readback", into: &hypervisor.libvirtCPUReadback)
        try reader.boolean("hypervisor", "allow_unconfined_qemu", into: &hypervisor.allowUnconfinedQEMU)
        configuration.hypervisor = hypervisor

        try reader.rejectUnknownKeys(in: "agent", known: ["transport", "dial_timeout_ms", "boot_stall_ms", "call_timeout_ms", "debug_console"])
        try reader.choice("agent", "transport", into: &configuration.agent.transport)
        try reader.integer("agent", "dial_timeout_ms", into: &configuration.agent.dialTimeoutMilliseconds, range: 100...600_000)
        try reader.integer("agent", "boot_stall_ms", into: &configuration.agent.bootStallMilliseconds, range: 100...600_000)
        try reader.integer("agent", "call_timeout_ms", into: &configuration.agent.callTimeoutMilliseconds, range: 100...3_600_000)
        try reader.boolean("agent", "debug_console", into: &configuration.agent.debugConsole)

        try reader.rejectUnknownKeys(in: "runtime", known: ["debug", "guest_seccomp", "state_dir"])
        try reader.boolean("runtime", "debug", into: &configuration.runtime.debug)
        try reader.boolean("runtime", "guest_seccomp", into: &configuration.runtime.guestSeccomp)
        try reader.absolutePath("runtime", "state_dir", into: &configuration.runtime.stateDirectory)

        try reader.rejectUnknownKeys(in: "pool", known: ["size"])
        try reader.integer("pool", "size", into: &configuration.pool.size, range: 0...Configuration.PoolSection.maximumSize)
        return configuration
    }
}

/// Typed, validated reads of one document's keys.
private struct SectionReader {
    let path: String
    let document: TOMLDocument

    func fail(_ table: String, _ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(path: path, line: document.tables[table]?[key]?.line, key: table.isEmpty ? key : "\(table).\(key)", message: message)
    }

    func rejectUnknownTables(_ known: Set<String>) throws(ConfigurationError) {
        for table in document.tables.keys.sorted() where !known.contains(table) {
            throw ConfigurationError(
                path: path, line: document.tableLines[table], key: nil,
                message: "unknown table [\(table)] (known: \(known.filter { !$0.isEmpty }.sorted().map { "[\($0)]" }.joined(separator: ", ")))")
        }
    }

    func rejectUnknownKeys(in table: String, known: [String]) throws(ConfigurationError) {
        for key in (document.tables[table] ?? [:]).keys.sorted() where !known.contains(key) {
            throw fail(
                table, key,
                known.isEmpty
                    ? "unknown key (settings belong in [hypervisor], [agent], [runtime] or [pool])"
                    : "unknown key (known keys in [\(table)]: \(known.joined(separator: ", ")))")
        }
    }

    func entry(_ table: String, _ key: String) -> TOMLValue? { document.tables[table]?[key]?.value }

    func string(_ table: String, _ key: String, into target: inout String, allowed: [String]? = nil) throws(ConfigurationError) {
        guard let value = entry(table, key) else { return }
        guard case .string(let text) = value else { throw fail(table, key, "expected a string, found \(value.typeName) \(value)") }
        if let allowed, !allowed.contains(text) {
            throw fail(table, key, "\"\(text)\" is not one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        target = text
    }

    /// An array of strings, each one of `allowed`.
    func strings(_ table: String, _ key: String, into target: inout [String], allowed: [String]) throws(ConfigurationError) {
        guard let value = entry(table, key) else { return }
        guard case .array(let values) = value else { throw fail(table, key, "expected an array of strings, found \(value.typeName) \(value)") }
        var texts: [String] = []
        for value in values {
            guard case .string(let text) = value else { throw fail(table, key, "expected strings, found \(value.typeName) \(value)") }
            guard allowed.contains(text) else {
                throw fail(table, key, "\"\(text)\" is not one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            texts.append(text)
        }
        target = texts
    }

    func absolutePath(_ table: String, _ key: String, into target: inout String) throws(ConfigurationError) {
        var text = target
        try string(table, key, into: &text)
        guard text.hasPrefix("/") else { throw fail(table, key, "\"\(text)\" must be an absolute path") }
        target = text
    }

    func choice<T: RawRepresentable & CaseIterable>(_ table: String, _ key: String, into target: inout T) throws(ConfigurationError)
    where T.RawValue == String {
        var text = target.rawValue
        try string(table, key, into: &text, allowed: T.allCases.map(\.rawValue))
        target = T(rawValue: text)!
    }

    func integer(_ table: String, _ key: String, into target: inout Int, range: ClosedRange<Int>) throws(ConfigurationError) {
        guard let value = entry(table, key) else { return }
        guard case .integer(let number) = value else { throw fail(table, key, "expected an integer, found \(value.typeName) \(value)") }
        guard let fitted = Int(exactly: number), range.contains(fitted) else {
            throw fail(table, key, "\(number) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        target = fitted
    }

    func boolean(_ table: String, _ key: String, into target: inout Bool) throws(ConfigurationError) {
        guard let value = entry(table, key) else { return }
        guard case .boolean(let flag) = value else { throw fail(table, key, "expected true or false, found \(value.typeName) \(value)") }
        target = flag
    }
}
