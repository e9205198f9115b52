import Hypervisor
import SwiftKataConfig
import Testing

@Suite struct ConfigurationTests {
    @Test func emptyFileMeansDefaults() throws {
        #expect(try Configuration.parse("", path: "c.toml") == Configuration())
        #expect(try Configuration.parse("# only a comment\n\n", path: "c.toml") == Configuration())
    }

    @Test func missingDefaultFileMeansDefaults() throws {
        #expect(try Configuration.load(path: "/nonexistent/configuration.toml", mayBeMissing: true) == Configuration())
        #expect(throws: ConfigurationError.self) { try Configuration.load(path: "/nonexistent/configuration.toml") }
    }

    @Test func everyKeyIsRead() throws {
        let text = """
            [hypervisor]
            libvirt_uri = "qemu:///session"   # a comment
            accelerator = "tcg"
            machine = 'q35'
            vcpus = 2
            memory_mib = 1_024
            max_vcpus = 4
            max_memory_mib = 8192
            enable_annotations = ["vcpus", "memory_mib"]
            kernel = "/k/vmlinux"
            image = "/k/initrd.img"
            kernel_params = "debug loglevel=7"
            shared_fs = "9p"
            virtiofsd = "/opt/virtiofsd"
            emulator = "/opt/qemu"
            free_page_reporting = false
            tcg_translation_cache_mib = 64
            libvirt_cpu_readback = "per-feature"

            [agent]
            transport = "virtio-serial"
            dial_timeout_ms = 5000
            call_timeout_ms = 7000

            [runtime]
            debug = true
            guest_seccomp = false
            state_dir = "/run/sk"

            [pool]
            size = 2
            """
        let configuration = try Configuration.parse(text, path: "c.toml")
        #expect(configuration.hypervisor.libvirtURI == "qemu:///session")
        #expect(configuration.hypervisor.accelerator == .tcg)
        #expect(configuration.hypervisor.machine == "q35")
        #expect(configuration.hypervisor.vcpus == 2)
        #expect(configuration.hypervisor.memoryMiB == 1024)
        #expect(configuration.hypervisor.maxVCPUs == 4)
        #expect(configuration.hypervisor.maxMemoryMiB == 8192)
        #expect(configuration.hypervisor.enableAnnotations == ["vcpus", "memory_mib"])
        #expect(Configuration().hypervisor.enableAnnotations.isEmpty)
        #expect(configuration.hypervisor.kernel == "/k/vmlinux")
        #expect(configuration.hypervisor.image == "/k/initrd.img")
        #expect(configuration.hypervisor.kernelCommandLine.hasSuffix("panic=-1 debug loglevel=7"))
        #expect(configuration.hypervisor.sharedFilesystem == .ninep)
        #expect(configuration.hypervisor.virtiofsd == "/opt/virtiofsd")
        #expect(configuration.hypervisor.emulator == "/opt/qemu")
        #expect(!configuration.hypervisor.freePageReporting)
        #expect(configuration.hypervisor.tcgTranslationCacheMiB == 64)
        #expect(configuration.hypervisor.libvirtCPUReadback == .perFeature)
        #expect(Configuration().hypervisor.libvirtCPUReadback == .cpuidWords)
        #expect(configuration.agent.transport == .virtioSerial)
        #expect(configuration.agent.dialTimeoutMilliseconds == 5000)
        #expect(configuration.agent.callTimeoutMilliseconds == 7000)
        #expect(configuration.runtime.debug)
        #expect(!configuration.runtime.guestSeccomp)
        #expect(configuration.runtime.stateDirectory == "/run/sk")
        #expect(configuration.pool.size == 2)
        #expect(Configuration().pool.size == 0)
    }

    @Test(arguments: [
        ("[hypervisor]\nvcpu = 2\n", "c.toml:2: hypervisor.vcpu: unknown key"),
        ("[hypervisors]\n", "c.toml:1: unknown table [hypervisors]"),
        ("debug = true\n", "c.toml:1: debug: unknown key"),
        ("[hypervisor]\naccelerator = \"fast\"\n", "c.toml:2: hypervisor.accelerator: \"fast\" is not one of \"auto\", \"kvm\", \"tcg\""),
        (
            "[hypervisor]\nlibvirt_cpu_readback = \"fast\"\n",
            "c.toml:2: hypervisor.libvirt_cpu_readback: \"fast\" is not one of \"cpuid-words\", \"per-feature\""
        ),
        (
            "[hypervisor]\nlibvirt_uri = \"qemu+ext:///system?command=/tmp/x\"\n",
            "c.toml:2: hypervisor.libvirt_uri: \"qemu+ext:///system?command=/tmp/x\" is not one of \"qemu:///system\", \"qemu:///session\""
        ),
        ("[hypervisor]\nvcpus = \"2\"\n", "c.toml:2: hypervisor.vcpus: expected an integer, found string"),
        ("[hypervisor]\nvcpus = 0\n", "c.toml:2: hypervisor.vcpus: 0 is out of range 1...64"),
        ("[hypervisor]\nkernel = \"vmlinux\"\n", "c.toml:2: hypervisor.kernel: \"vmlinux\" must be an absolute path"),
        ("[runtime]\ndebug = yes\n", "c.toml:2: \"yes\" is not a TOML value"),
        ("[agent]\ntransport = \"vsock\"\ntransport = \"auto\"\n", "c.toml:3: key \"transport\" is set twice"),
        ("[agent\n", "c.toml:1: expected ']'"),
        ("[runtime]\nstate_dir = \"/run\n", "c.toml:2: unterminated string"),
        ("[pool]\nsize = 17\n", "c.toml:2: pool.size: 17 is out of range 0...16"),
        ("[hypervisor]\nenable_annotations = [\"kernel\"]\n", "c.toml:2: hypervisor.enable_annotations: \"kernel\" is not one of \"vcpus\", \"memory_mib\""),
        ("[hypervisor]\nenable_annotations = \"vcpus\"\n", "c.toml:2: hypervisor.enable_annotations: expected an array of strings"),
        ("[hypervisor]\nvcpus = 4\nmax_vcpus = 2\n", "c.toml:3: hypervisor.max_vcpus: 2 is below vcpus (4)"),
        ("[hypervisor]\nmax_memory_mib = 128\n", "c.toml:2: hypervisor.max_memory_mib: 128 is below memory_mib (256)"),
        ("[pool]\nwarm = 1\n", "c.toml:2: pool.warm: unknown key (known keys in [pool]: size)"),
    ])
    func badInputNamesFileLineAndKey(text: String, expected: String) {
        #expect {
            try Configuration.parse(text, path: "c.toml")
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    @Test func configPathPrecedence() {
        #expect(Configuration.resolvePath(runtimeOptionPath: "/a.toml", environment: ["SWIFTKATA_CONFIG": "/b.toml"]) == ("/a.toml", false))
        #expect(Configuration.resolvePath(runtimeOptionPath: nil, environment: ["SWIFTKATA_CONFIG": "/b.toml"]) == ("/b.toml", false))
        #expect(Configuration.resolvePath(runtimeOptionPath: "", environment: [:]) == (Configuration.defaultPath, true))
    }

    @Test func tomlValues() throws {
        let document = try TOMLDocument(parsing: "a = [1, 2,\n  3] # c\nb = \"x\\ty\\u00e9\"\nc = 1.5\n\"q k\" = 'lit\\n'\n")
        #expect(document.tables[""]?["a"]?.value == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(document.tables[""]?["b"]?.value == .string("x\tyé"))
        #expect(document.tables[""]?["c"]?.value == .float(1.5))
        #expect(document.tables[""]?["q k"]?.value == .string("lit\\n"))
    }
}
