import AgentClient
import Glibc
import Hypervisor
import Logging
import SwiftKataConfig
import SwiftKataOS
import TTRPC

/// Pod VMs booted before any pod asks for one (Kata's "VM cache"): a new pod claims a running VM and
/// skips the domain start and the guest boot; the pod's shim then boots a replacement.
///
/// `<state_dir>/pool/<key>/` holds one directory per VM, laid out like a pod's directory (`shared/`,
/// `vm/`): `.booting-<id>` while its domain starts, `<id>` once it runs. A pod claims a VM by renaming
/// its directory to the pod's own. QEMU, virtiofsd and the agent socket keep what they opened at start,
/// so the VM serves on under the new path, and a directory can be renamed away only once, so no VM
/// goes to two pods. The key (`VMPlan.poolKey`) covers everything that shapes the VM, so a pod only
/// ever gets a VM it would have booted itself; what belongs to the pod (hostname, network, sysctls)
/// reaches the guest afterwards, with CreateSandbox. A pool VM serves one pod and dies with it.
struct WarmPool: Sendable {
    let plan: VMPlan
    let size: Int
    /// `<state_dir>/pool`
    let root: String
    /// `<state_dir>/pool/<key>`
    let directory: String

    /// A pool that nobody refilled or claimed from (both change its directory) for this long is
    /// drained by the next refill of another pool (its configuration probably changed: a new kernel,
    /// image or setting).
    static let unusedPoolLifetime: Int = 600
    /// A VM still booting after this long belongs to a refill that died.
    static let bootingLifetime: Int = 120

    init(plan: VMPlan) {
        self.plan = plan
        size = plan.configuration.pool.size
        root = "\(plan.configuration.runtime.stateDirectory)/pool"
        directory = "\(root)/\(plan.poolKey)"
    }

    /// Moves a running pool VM to `layout.directory` and returns its identity; nil when the pool has
    /// none (the pod then boots its own). VMs found dead on the way are discarded.
    func claim(into layout: PodLayout, logger: Logger) -> VMIdentity? {
        guard size > 0 else { return nil }
        if access(layout.directory, F_OK) == 0 {
            logger.warning(
                "warm pool: pod directory exists already (left by a shim that died); booting a VM for the pod",
                metadata: [
                    "directory": "\(layout.directory)"
                ])
            return nil
        }
        let parent = String(layout.directory[..<(layout.directory.lastIndex(of: "/") ?? layout.directory.endIndex)])
        do { try makeDirectories(parent, mode: 0o711) } catch { return nil }
        for entry in directoryEntries(directory).filter({ !$0.hasPrefix(".") }).sorted() {
            // Another pod may rename it first: then this rename fails with ENOENT and the next one is tried.
            guard rename("\(directory)/\(entry)", layout.directory) == 0 else { continue }
            if let identity = VMIdentity.load(in: layout), let pid = identity.qemuPID, kill(pid, 0) == 0,
                QEMUProcess.pid(ofDomain: identity.domainName) == pid
            {
                return identity
            }
            logger.warning("warm pool: discarding a VM that no longer runs", metadata: ["entry": "\(entry)"])
            discard(PodLayout(poolEntry: entry, directory: layout.directory), logger: logger)
        }
        return nil
    }

    /// Boots VMs until the pool holds `size` of them (running or booting). First drains VMs whose
    /// refill died while they booted, and pools of other keys nobody used for `unusedPoolLifetime`.
    /// A VM is published once its agent answered: that first call also pages in and translates (under
    /// TCG) the agent's serving code, which a pod's first call would otherwise wait for (≈ 40 ms).
    func refill(logger: Logger) async {
        guard size > 0 else { return }
        let reserved = await onBlockingThread { () -> Result<[String], ShimError> in
            do throws(ShimError) { return .success(try reserveEntries(logger: logger)) } catch { return .failure(error) }
        }
        guard case .success(let entries) = reserved else {
            if case .failure(let error) = reserved { logger.warning("warm pool: cannot refill", metadata: ["error": "\(error)"]) }
            return
        }
        for entry in entries {
            let booting = PodLayout(poolEntry: entry, directory: "\(directory)/.booting-\(entry)")
            let started = ContinuousClock.now
            // Starting a domain blocks on the libvirt helper: not on a cooperative thread.
            let launched = await onBlockingThread { () -> Result<VMIdentity, ShimError> in
                let tap = VMDescription.Tap(device: "skpool" + Digest.sha256Hex(entry).prefix(9), macAddress: Self.randomMACAddress())
                do throws(ShimError) { return .success(try plan.launch(layout: booting, owner: .warmPool(entryID: entry), tap: tap)) } catch {
                    return .failure(error)
                }
            }
            guard case .success(let identity) = launched else {
                if case .failure(let error) = launched { logger.warning("warm pool: booting a VM failed", metadata: ["error": "\(error)"]) }
                discard(booting, logger: logger)
                continue
            }
            let domainCreated = ContinuousClock.now
            if let failure = await awaitAgent(of: identity, layout: booting, since: started) {
                logger.warning(
                    "warm pool: a VM's agent did not answer; discarding it",
                    metadata: [
                        "domain": "\(identity.domainName)", "reason": "\(failure)",
                    ])
                Self.destroy(identity, control: plan.control, logger: logger)
                discard(booting, logger: logger)
                continue
            }
            if rename(booting.directory, "\(directory)/\(entry)") != 0 {
                // Drained meanwhile (its directory is gone with the identity file): destroy it by name.
                logger.warning("warm pool: publishing a VM failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                Self.destroy(identity, control: plan.control, logger: logger)
                discard(booting, logger: logger)
                continue
            }
            SlowDomainStart.report(domainCreated - started, domain: identity.domainName, logger: logger)
            logger.info(
                "warm pool: VM ready",
                metadata: [
                    "entry": "\(entry)", "domain_create_ms": "\((domainCreated - started).milliseconds)",
                    "agent_ready_ms": "\((ContinuousClock.now - domainCreated).milliseconds)",
                ])
        }
    }

    /// Waits for the booting VM's agent to answer Health once, then hangs up; nil on success.
    private func awaitAgent(of identity: VMIdentity, layout: PodLayout, since started: ContinuousClock.Instant) async -> String? {
        guard let endpoint = plan.agentEndpoint(of: identity, in: layout) else { return "no vsock context id" }
        let pid = identity.qemuPID ?? 0
        let agent = plan.configuration.agent
        let limit = started + .milliseconds(agent.dialTimeoutMilliseconds) - ContinuousClock.now
        let watch = BootWatch.qemu(pid: pid, console: layout.consoleLog, limit: max(.zero, limit), stall: .milliseconds(agent.bootStallMilliseconds))
        switch await AgentReadiness.connect(endpoint, watch: watch) {
        case .success(let (client, _)):
            await client.close()
            return nil
        case .failure(let error):
            return "\(error); console: \(layout.consoleTail())"
        }
    }

    /// Under the pool's lock: drains what is stale, then creates the `.booting-` directories of the
    /// VMs still missing (so concurrent refills do not overshoot) and returns their entry ids.
    func reserveEntries(logger: Logger) throws(ShimError) -> [String] {
        try ShimError.system("creating a state directory") { try makeDirectories(directory, mode: 0o711) }
        let lock = open("\(root)/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw .internalError("opening \(root)/.lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { throw .internalError("locking \(root)/.lock: \(String(cString: strerror(errno)))") }
        let now = Int(time(nil))
        drainUnusedPools(now: now, logger: logger)
        var count = 0
        for name in directoryEntries(directory) {
            if name.hasPrefix(".booting-") {
                let entry = String(name.dropFirst(".booting-".count))
                if now - Self.createdAt(entry) > Self.bootingLifetime {
                    logger.warning("warm pool: discarding a VM whose refill died while it booted", metadata: ["entry": "\(entry)"])
                    discard(PodLayout(poolEntry: entry, directory: "\(directory)/\(name)"), logger: logger)
                    continue
                }
                count += 1
            } else if !name.hasPrefix(".") {
                count += 1
            }
        }
        var reserved: [String] = []
        while count + reserved.count < size {
            let entry = Self.newEntryID(now: now)
            try ShimError.system("creating a state directory") { try makeDirectories("\(directory)/.booting-\(entry)", mode: 0o711) }
            reserved.append(entry)
        }
        return reserved
    }

    private func drainUnusedPools(now: Int, logger: Logger) {
        for key in directoryEntries(root) where !key.hasPrefix(".") && "\(root)/\(key)" != directory {
            var info = stat()
            guard stat("\(root)/\(key)", &info) == 0, now - Int(info.st_mtim.tv_sec) > Self.unusedPoolLifetime else { continue }
            logger.info("warm pool: draining a pool unused for \(Self.unusedPoolLifetime / 60) minutes", metadata: ["key": "\(key)"])
            Self.drain(poolDirectory: "\(root)/\(key)", fallbackControl: plan.control, logger: logger)
        }
    }

    /// `containerd-shim-swiftkata-v2 drain-pool`: destroys every warm-pool VM under the configured state
    /// directory ($SWIFTKATA_CONFIG or the default file), for uninstalls and configuration changes.
    static func drainCommand() -> Int32 {
        let (path, mayBeMissing) = Configuration.resolvePath(runtimeOptionPath: nil, environment: processEnvironment())
        let configuration: Configuration
        do { configuration = try Configuration.load(path: path, mayBeMissing: mayBeMissing) } catch {
            ShimMain.printError("drain-pool: \(error)")
            return 1
        }
        guard let helper = VMControl.locateHelper() else {
            ShimMain.printError("drain-pool: \(VMControl.helperName) is missing next to \(VMControl.currentExecutable())")
            return 1
        }
        ShimLogHandler.bootstrap(level: .info)
        let logger = Logger(label: "swiftkata.pool")
        let root = "\(configuration.runtime.stateDirectory)/pool"
        let control = VMControl(helper: helper, uri: configuration.hypervisor.libvirtURI)
        var count = 0
        for key in directoryEntries(root) where !key.hasPrefix(".") {
            count += directoryEntries("\(root)/\(key)").count
            drain(poolDirectory: "\(root)/\(key)", fallbackControl: control, logger: logger)
        }
        print("drained \(count) warm-pool VM\(count == 1 ? "" : "s") from \(root)")
        return 0
    }

    /// Destroys every VM of the pool at `poolDirectory` and removes it (uninstall, stale pools).
    static func drain(poolDirectory: String, fallbackControl: VMControl, logger: Logger) {
        for name in directoryEntries(poolDirectory) {
            let entry = name.hasPrefix(".booting-") ? String(name.dropFirst(".booting-".count)) : name
            discard(PodLayout(poolEntry: entry, directory: "\(poolDirectory)/\(name)"), fallbackControl: fallbackControl, logger: logger)
        }
        rmdir(poolDirectory)
    }

    private func discard(_ entry: PodLayout, logger: Logger) {
        Self.discard(entry, fallbackControl: plan.control, logger: logger)
    }

    /// Destroys a pool VM (the domain and tap named in its identity) and removes its directory.
    static func discard(_ entry: PodLayout, fallbackControl: VMControl, logger: Logger) {
        if let identity = VMIdentity.load(in: entry) { destroy(identity, control: fallbackControl, logger: logger) }
        for failure in HostMounts.removePodDirectory(entry.directory) {
            logger.warning("warm pool: left behind", metadata: ["reason": "\(failure)"])
        }
    }

    /// Destroys a pool VM's domain (on the configured libvirt connection) and its unclaimed tap.
    static func destroy(_ identity: VMIdentity, control: VMControl, logger: Logger) {
        do { try control.destroy(name: identity.domainName) } catch {
            logger.warning("warm pool: destroying a VM failed", metadata: ["domain": "\(identity.domainName)", "error": "\(error)"])
        }
        if let tap = identity.tapName { PodTap(name: tap).remove() }
    }

    /// Entry ids sort by age: 10 hex digits of the creation time, then 8 random ones.
    static func newEntryID(now: Int) -> String {
        let time = String(now, radix: 16)
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return String(repeating: "0", count: max(0, 10 - time.count)) + time + "-" + String(repeating: "0", count: 8 - random.count) + random
    }

    static func createdAt(_ entry: String) -> Int { Int(entry.prefix(10), radix: 16) ?? 0 }

    /// A locally administered unicast address in QEMU's 52:54:00 range.
    static func randomMACAddress() -> String {
        let bytes = [0x52, 0x54, 0x00] + (0..<3).map { _ in Int.random(in: 0...255) }
        return bytes.map { String(repeating: "0", count: $0 < 16 ? 1 : 0) + String($0, radix: 16) }.joined(separator: ":")
    }
}
