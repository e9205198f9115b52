import AgentClient
import Glibc
import Hypervisor
import HypervisorLibvirt
import SwiftKataConfig
import SwiftKataOS

extension HostEnvironment {
    /// The real host. `kvmProbeCacheDirectory` is where KVM probe results are cached (the shim's
    /// default, so both share one probe per boot and kernel; tests pass a temporary directory).
    public static func live(kvmProbeCacheDirectory: String = "/var/cache/swiftkata/kvm-probe") -> HostEnvironment {
        var environment: [String: String] = [:]
        for name in ["PATH", Configuration.pathEnvironmentVariable] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        var host = HostEnvironment(
            readFile: { path, limit in readFilePrefix(path, limit: limit) },
            canAccess: { path, mode in access(path, mode.rawValue) == 0 },
            processNames: runningProcessNames,
            run: { executable, arguments in runProcess(executable, arguments) },
            acceptsConnections: unixSocketAcceptsConnections,
            libvirt: { uri in
                do throws(LibvirtError) {
                    return .success(try LibvirtConnection(uri: uri).versions())
                } catch {
                    return .failure(HostProbeError(error.description))
                }
            },
            probeKVM: { kernel, image, fresh in
                if fresh { forgetProbeResultsOfThisBoot(in: kvmProbeCacheDirectory) }
                let guestImage: GuestImage
                do throws(GuestImageError) { guestImage = try GuestImage.load(path: image) } catch {
                    return KVMProbeOutcome(usable: false, reason: "not probed: \(error)")
                }
                let probe = AcceleratorProbe(cacheDirectory: kvmProbeCacheDirectory) {
                    await KVMProbe.boot(kernel: kernel, image: guestImage, timeout: .seconds(5))
                }
                let result = await probe.probe(kernelPath: kernel)
                return KVMProbeOutcome(usable: result.usable, reason: result.reason)
            },
            loadConfiguration: { path, mayBeMissing throws(ConfigurationError) in
                try Configuration.load(path: path, mayBeMissing: mayBeMissing)
            },
            environment: environment)
        host.listDirectory = { path in access(path, R_OK | X_OK) == 0 ? directoryEntries(path) : nil }
        host.qemuUserCanOpen = { path in userMayReadAndWrite(QEMUUser.name, path) }
        host.criStatus = { socket in CRIStatusClient.status(socketPath: socket) }
        host.libvirtCapabilitiesStable = { uri, emulator in libvirtCapabilityCacheIsStable(uri: uri, emulator: emulator) }
        return host
    }
}

/// `comm` of every process in /proc (a pgrep without patterns).
@Sendable func runningProcessNames() -> Set<String> {
    var names = Set<String>()
    for pid in directoryEntries("/proc") where pid.allSatisfy(\.isNumber) {
        if let comm = readFilePrefix("/proc/\(pid)/comm", limit: 64) {
            names.insert(String(decoding: comm, as: UTF8.self).trimmingWhitespace())
        }
    }
    return names
}

/// Whether connecting to the unix stream socket at `path` succeeds.
@Sendable func unixSocketAcceptsConnections(_ path: String) -> Bool {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    return connected == 0
}

/// Removes the cached KVM probe results of this host boot (files named `<boot id>-<kernel key>`), so the
/// next probe boots a guest again and re-caches its result for the shim.
func forgetProbeResultsOfThisBoot(in directory: String) {
    guard let bootID = readFilePrefix("/proc/sys/kernel/random/boot_id", limit: 64).map({ String(decoding: $0, as: UTF8.self).trimmingWhitespace() }),
        !bootID.isEmpty
    else { return }
    for name in directoryEntries(directory) where name.hasPrefix("\(bootID)-") {
        unlink("\(directory)/\(name)")
    }
}

/// Looks QEMU's capabilities up twice through libvirt; libvirt's cache files changing on the second
/// lookup mean it found them invalid again right after a probe (a re-probe at every domain start).
/// Only for the system instance, whose cache is `/var/cache/libvirt/qemu/capabilities`.
@Sendable func libvirtCapabilityCacheIsStable(uri: String, emulator: String) -> Result<Bool, HostProbeError> {
    let cache = "/var/cache/libvirt/qemu/capabilities"
    func modificationTimes() -> [String: Int] {
        var times: [String: Int] = [:]
        for name in directoryEntries(cache) {
            var info = stat()
            if lstat("\(cache)/\(name)", &info) == 0 { times[name] = info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec }
        }
        return times
    }
    do throws(LibvirtError) {
        let connection = try LibvirtConnection(uri: uri)
        try connection.lookUpDomainCapabilities(emulator: emulator)  // a first re-probe may be due (an upgrade)
        let before = modificationTimes()
        try connection.lookUpDomainCapabilities(emulator: emulator)
        return .success(before == modificationTimes())
    } catch {
        return .failure(HostProbeError(error.description))
    }
}
