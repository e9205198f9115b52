/// The effective configuration as `key = value` lines, and where each value came from: what
/// `swiftkata-check --env` prints for a bug report.
extension Configuration {
    /// Every setting as "table.key" and its value in TOML spelling, in the file's order.
    public var entries: [(key: String, value: String)] {
        let h = hypervisor
        return [
            ("hypervisor.libvirt_uri", quoted(h.libvirtURI)), ("hypervisor.accelerator", quoted(h.accelerator.rawValue)),
            ("hypervisor.machine", quoted(h.machine)), ("hypervisor.vcpus", "\(h.vcpus)"), ("hypervisor.memory_mib", "\(h.memoryMiB)"),
            ("hypervisor.max_vcpus", "\(h.maxVCPUs)"), ("hypervisor.max_memory_mib", "\(h.maxMemoryMiB)"),
            ("hypervisor.hotplug", "\(h.hotplug)"),
            ("hypervisor.enable_annotations", "[\(h.enableAnnotations.map(quoted).joined(separator: ", "))]"),
            ("hypervisor.kernel", quoted(h.kernel)), ("hypervisor.image", quoted(h.image)),
            ("hypervisor.kernel_params", quoted(h.kernelParameters)), ("hypervisor.shared_fs", quoted(h.sharedFilesystem.rawValue)),
            ("hypervisor.virtiofsd", quoted(h.virtiofsd)), ("hypervisor.emulator", quoted(h.emulator)),
            ("hypervisor.free_page_reporting", "\(h.freePageReporting)"), ("hypervisor.tcg_translation_cache_mib", "\(h.tcgTranslationCacheMiB)"),
            ("hypervisor.libvirt_cpu_readback", quoted(h.libvirtCPUReadback.rawValue)),
            ("hypervisor.allow_unconfined_qemu", "\(h.allowUnconfinedQEMU)"),
            ("agent.transport", quoted(agent.transport.rawValue)), ("agent.dial_timeout_ms", "\(agent.dialTimeoutMilliseconds)"),
            ("agent.boot_stall_ms", "\(agent.bootStallMilliseconds)"),
            ("agent.call_timeout_ms", "\(agent.callTimeoutMilliseconds)"), ("agent.debug_console", "\(agent.debugConsole)"),
            ("runtime.debug", "\(runtime.debug)"), ("runtime.guest_seccomp", "\(runtime.guestSeccomp)"),
            ("runtime.state_dir", quoted(runtime.stateDirectory)), ("pool.size", "\(pool.size)"),
        ]
    }

    /// The line of each "table.key" set in the configuration text (absent keys take their default).
    public static func definedKeys(in text: String) -> [String: Int] {
        guard let document = try? TOMLDocument(parsing: text) else { return [:] }
        var lines: [String: Int] = [:]
        for (table, keys) in document.tables {
            for (key, entry) in keys { lines[table.isEmpty ? key : "\(table).\(key)"] = entry.line }
        }
        return lines
    }
}

private func quoted(_ text: String) -> String { "\"\(text)\"" }
