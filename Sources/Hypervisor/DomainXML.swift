/// Renders a `VMDescription` as libvirt domain XML (a transient domain: libvirt forgets it when it stops).
public enum DomainXML {
    /// Namespace of swiftkata's `<metadata>` element.
    public static let metadataNamespace = "https://swiftkata.dev/xmlns/pod/1"
    /// libvirt's namespace for QEMU-specific domain settings.
    static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"
    /// CPU features a TCG guest runs without (see `render`).
    static let tcgDisabledCPUFeatures = ["erms", "fsrm"]

    public static func render(_ vm: VMDescription) throws(VMDescriptionError) -> String {
        try validate(vm)
        var xml = "<domain type='\(vm.accelerator == .kvm ? "kvm" : "qemu")'"
        xml += vm.cpuReadback == .cpuidWords ? " xmlns:qemu='\(qemuNamespace)'>\n" : ">\n"
        xml += "  <name>\(escape(VMDescription.domainName(for: vm.owner)))</name>\n"
        xml += "  <metadata>\n"
        xml += "    <swiftkata:pod xmlns:swiftkata='\(metadataNamespace)'>\n"
        xml += "      <swiftkata:id>\(escape(vm.owner.podID))</swiftkata:id>\n"
        xml += "      <swiftkata:namespace>\(escape(vm.owner.namespace))</swiftkata:namespace>\n"
        if vm.owner.pooled { xml += "      <swiftkata:warm-pool/>\n" }
        xml += "      <swiftkata:created-by>swiftkata</swiftkata:created-by>\n"
        xml += "    </swiftkata:pod>\n"
        xml += "  </metadata>\n"
        xml += "  <memory unit='MiB'>\(vm.memoryMiB)</memory>\n"
        let hotplugMemoryMiB = vm.hotplug?.deviceMiB(bootMemoryMiB: vm.memoryMiB) ?? 0
        if hotplugMemoryMiB > 0 {
            // virtio-mem takes no DIMM slot, but libvirt wants the ceiling stated with one.
            xml += "  <maxMemory slots='1' unit='MiB'>\(vm.memoryMiB + hotplugMemoryMiB)</maxMemory>\n"
        }
        if case .virtioFS = vm.sharedFilesystem {
            // virtiofsd maps guest memory: it must be shared, memfd-backed.
            xml += "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n"
        }
        // A VM that grows has all its vCPUs from the start; the guest onlines `vcpus` of them.
        xml += "  <vcpu>\(vm.vcpuThreads)</vcpu>\n"
        xml += "  <os>\n"
        xml += "    <type arch='x86_64' machine='\(escape(vm.machine))'>hvm</type>\n"
        xml += "    <kernel>\(escape(vm.kernel))</kernel>\n"
        if case .initrd(let path) = vm.image { xml += "    <initrd>\(escape(path))</initrd>\n" }
        xml += "    <cmdline>\(escape(vm.image.kernelCommandLine(vm.fullKernelCommandLine)))</cmdline>\n"
        xml += "  </os>\n"
        xml += "  <features>\n    <acpi/>\n"
        if vm.accelerator == .tcg, let cache = vm.effectiveTranslationCacheMiB {
            xml += "    <tcg>\n      <tb-cache unit='MiB'>\(cache)</tb-cache>\n    </tcg>\n"
        }
        xml += "  </features>\n"
        // KVM: the host CPU as is; TCG: everything QEMU can emulate (RDRAND seeds the guest's entropy).
        let cpuMode = vm.accelerator == .kvm ? "host-passthrough" : "maximum"
        var cpu = ""
        if vm.accelerator == .tcg {
            // Without ERMS and FSRM the guest's kernel and libc copy and clear memory with 8-byte
            // moves instead of `rep movsb`/`rep stosb`, which TCG runs one byte per iteration: the
            // guest's copies are the cost of its stdout (exec of dd 256 MiB: 126 -> 468 MB/s).
            for feature in Self.tcgDisabledCPUFeatures { cpu += "    <feature policy='disable' name='\(feature)'/>\n" }
        }
        if hotplugMemoryMiB > 0 {
            // Memory devices belong to a NUMA node: one node holds every vCPU and the boot memory.
            let lastCPU = vm.vcpuThreads - 1
            cpu += "    <numa>\n      <cell id='0' cpus='0-\(lastCPU)' memory='\(vm.memoryMiB)' unit='MiB'/>\n    </numa>\n"
        }
        xml += cpu.isEmpty ? "  <cpu mode='\(cpuMode)'/>\n" : "  <cpu mode='\(cpuMode)'>\n\(cpu)  </cpu>\n"
        xml += "  <clock offset='utc'/>\n"
        xml += "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n"
        xml += "  <devices>\n"
        xml += "    <emulator>\(escape(vm.emulator))</emulator>\n"
        // No USB controller (libvirt adds one by default): the guest has no use for it, and every
        // device costs probing time at boot.
        xml += "    <controller type='usb' model='none'/>\n"
        if case .rootDisk(let path) = vm.image {
            // One image serves every pod: read-only, so no guest can change it, and not relabelled, so
            // libvirt does not chown it per domain (QEMU reads it as any user: mode 0644).
            xml += "    <disk type='file' device='disk'>\n"
            xml += "      <driver name='qemu' type='raw'/>\n"
            xml += "      <source file='\(escape(path))'>\n        <seclabel model='dac' relabel='no'/>\n      </source>\n"
            xml += "      <target dev='vda' bus='virtio'/>\n"
            xml += "      <readonly/>\n"
            xml += "    </disk>\n"
        }
        xml += "    <serial type='file'>\n      <source path='\(escape(vm.consoleLog))'/>\n      <target port='0'/>\n    </serial>\n"
        switch vm.sharedFilesystem {
        case .virtioFS(let hostPath, let tag, let virtiofsd):
            xml += "    <filesystem type='mount' accessmode='passthrough'>\n"
            xml += "      <driver type='virtiofs' queue='1024'/>\n"
            xml += "      <binary path='\(escape(virtiofsd))'/>\n"
            xml += "      <source dir='\(escape(hostPath))'/>\n"
            xml += "      <target dir='\(escape(tag))'/>\n"
            xml += "    </filesystem>\n"
        case .ninep(let hostPath, let tag):
            xml += "    <filesystem type='mount' accessmode='passthrough'>\n"
            xml += "      <source dir='\(escape(hostPath))'/>\n"
            xml += "      <target dir='\(escape(tag))'/>\n"
            xml += "    </filesystem>\n"
        case nil:
            break
        }
        switch vm.agentChannel {
        case .vsock:
            xml += "    <vsock model='virtio'>\n      <cid auto='yes'/>\n    </vsock>\n"
        case .virtioSerial(let socketPath, let name):
            xml += "    <channel type='unix'>\n"
            xml += "      <source mode='bind' path='\(escape(socketPath))'/>\n"
            xml += "      <target type='virtio' name='\(escape(name))'/>\n"
            xml += "    </channel>\n"
        }
        if let tap = vm.tap {
            xml += "    <interface type='ethernet'>\n"
            xml += "      <mac address='\(escape(tap.macAddress))'/>\n"
            xml += "      <target dev='\(escape(tap.device))' managed='no'/>\n"
            xml += "      <model type='virtio'/>\n"
            xml += "    </interface>\n"
        }
        if hotplugMemoryMiB > 0 {
            // Plugged in 2 MiB blocks as the pod grows; unplugged blocks go back to the host.
            xml += "    <memory model='virtio-mem'>\n      <target>\n"
            xml += "        <size unit='MiB'>\(hotplugMemoryMiB)</size>\n        <node>0</node>\n"
            xml += "        <block unit='MiB'>\(VMDescription.Hotplug.blockMiB)</block>\n"
            xml += "        <requested unit='MiB'>0</requested>\n"
            xml += "      </target>\n    </memory>\n"
        }
        xml += "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n"
        xml += vm.freePageReporting ? "    <memballoon model='virtio' freePageReporting='on'/>\n" : "    <memballoon model='none'/>\n"
        xml += "  </devices>\n"
        if vm.cpuReadback == .cpuidWords {
            // Without this capability libvirt reads the CPU as CPUID words instead of one property per call.
            xml += "  <qemu:capabilities>\n    <qemu:del capability='cpu-unavailable-features'/>\n  </qemu:capabilities>\n"
        }
        xml += "</domain>\n"
        return xml
    }

    static func validate(_ vm: VMDescription) throws(VMDescriptionError) {
        let id = vm.owner.podID
        guard !id.isEmpty, id.utf8.count <= 64,
            id.utf8.allSatisfy({ isWordByte($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
        else { throw .invalid(field: "pod id", reason: "\"\(id.prefix(80))\" is not [A-Za-z0-9_.-]{1,64}") }
        guard (1...64).contains(vm.vcpus) else { throw .invalid(field: "vcpus", reason: "\(vm.vcpus) is outside 1...64") }
        guard (64...1_048_576).contains(vm.memoryMiB) else { throw .invalid(field: "memory", reason: "\(vm.memoryMiB) MiB is outside 64 MiB...1 TiB") }
        if let hotplug = vm.hotplug {
            guard (vm.vcpus...64).contains(hotplug.maxVCPUs) else {
                throw .invalid(field: "hotplug vcpus", reason: "\(hotplug.maxVCPUs) is outside \(vm.vcpus)...64")
            }
            guard (vm.memoryMiB...1_048_576).contains(hotplug.maxMemoryMiB) else {
                throw .invalid(field: "hotplug memory", reason: "\(hotplug.maxMemoryMiB) MiB is outside \(vm.memoryMiB) MiB...1 TiB")
            }
        }
        if let cache = vm.translationCacheMiB, !(1...4096).contains(cache) {
            throw .invalid(field: "translation cache", reason: "\(cache) MiB is outside 1...4096 MiB")
        }
        for (field, path) in [("kernel", vm.kernel), ("image", vm.image.path), ("console log", vm.consoleLog), ("emulator", vm.emulator)] {
            guard path.hasPrefix("/") else { throw .invalid(field: field, reason: "\(path) is not an absolute path") }
        }
        if let tap = vm.tap {
            let parts = tap.macAddress.split(separator: ":")
            guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else {
                throw .invalid(field: "tap mac address", reason: "\(tap.macAddress) is not aa:bb:cc:dd:ee:ff")
            }
            guard !tap.device.isEmpty, tap.device.utf8.count < 16 else {
                throw .invalid(field: "tap device", reason: "\(tap.device) is not a network interface name")
            }
        }
        switch vm.sharedFilesystem {
        case .virtioFS(let hostPath, let tag, _), .ninep(let hostPath, let tag):
            guard hostPath.hasPrefix("/") else { throw .invalid(field: "shared filesystem", reason: "\(hostPath) is not an absolute path") }
            guard !tag.isEmpty, tag.utf8.count <= 36 else { throw .invalid(field: "shared filesystem tag", reason: "\"\(tag)\" must have 1 to 36 bytes") }
        case nil:
            break
        }
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
    }

    /// Escapes text and attribute values (attributes are single-quoted).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'": out += "&apos;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
