import CLibvirt
import Glibc
import Hypervisor
import SwiftKataOS
import Synchronization

/// A failure reported by libvirt, with libvirt's own message.
public struct LibvirtError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var message: String
    /// libvirt's error code (virErrorNumber), e.g. VIR_ERR_NO_DOMAIN = 42.
    public var code: Int32

    public var description: String { "\(operation): \(message)" }

    public init(operation: String, message: String, code: Int32) {
        self.operation = operation
        self.message = message
        self.code = code
    }

    /// The last error libvirt recorded on this thread.
    static func last(_ operation: String) -> LibvirtError {
        guard let error = virGetLastError() else { return LibvirtError(operation: operation, message: "unknown libvirt error", code: -1) }
        let message = error.pointee.message.map { String(cString: $0) } ?? "unknown libvirt error"
        return LibvirtError(operation: operation, message: message, code: error.pointee.code)
    }

    public var isNoDomain: Bool { code == Int32(VIR_ERR_NO_DOMAIN.rawValue) }
}

/// A connection to libvirtd through the libvirt C API (not virsh).
///
/// Lifecycle events run on libvirt's default event loop, driven by one thread for the process, and
/// are delivered per domain name through `events(for:)`.
public final class LibvirtConnection: @unchecked Sendable {
    // @unchecked: virConnectPtr is thread-safe in libvirt; the mutable event table is guarded by `subscribers`.
    let connection: virConnectPtr
    /// Set once in init, read in deinit.
    private var eventCallbackID: Int32 = -1
    private let subscribers = Mutex<[String: [AsyncStream<DomainLifecycleEvent>.Continuation]]>([:])
    public let uri: String

    private static let eventLoop: Void = {
        virEventRegisterDefaultImpl()
        startDetachedThread {
            while true { virEventRunDefaultImpl() }
        }
    }()

    /// Opens `uri` (default qemu:///system). Fails with libvirt's message when libvirtd is down or the URI is wrong.
    public init(uri: String = "qemu:///system") throws(LibvirtError) {
        _ = Self.eventLoop
        // Errors come back as LibvirtError values; libvirt must not also print them on stderr
        // (the shim's stderr is containerd's log).
        virSetErrorFunc(nil) { _, _ in }
        guard let connection = virConnectOpen(uri) else {
            throw LibvirtError.last("connecting to libvirt at \(uri)")
        }
        self.connection = connection
        self.uri = uri
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        let callback: @convention(c) (virConnectPtr?, virDomainPtr?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, domain, event, detail, opaque in
            guard let domain, let opaque, let name = virDomainGetName(domain) else { return 0 }
            let connection = Unmanaged<LibvirtConnection>.fromOpaque(opaque).takeUnretainedValue()
            connection.deliver(domain: String(cString: name), event: event, detail: detail)
            return 0
        }
        let id = virConnectDomainEventRegisterAny(
            connection, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue),
            unsafeBitCast(callback, to: virConnectDomainEventGenericCallback.self), opaque, nil)
        guard id >= 0 else {
            virConnectClose(connection)
            throw LibvirtError.last("registering for domain lifecycle events")
        }
        eventCallbackID = id
    }

    deinit {
        if eventCallbackID >= 0 { virConnectDomainEventDeregisterAny(connection, eventCallbackID) }
        virConnectClose(connection)
    }

    private func deliver(domain: String, event: Int32, detail: Int32) {
        let lifecycle: DomainLifecycleEvent
        switch UInt32(event) {
        case VIR_DOMAIN_EVENT_STARTED.rawValue: lifecycle = .started
        case VIR_DOMAIN_EVENT_STOPPED.rawValue:
            switch UInt32(detail) {
            case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN.rawValue: lifecycle = .stopped(reason: .shutdown)
            case VIR_DOMAIN_EVENT_STOPPED_DESTROYED.rawValue: lifecycle = .stopped(reason: .destroyed)
            case VIR_DOMAIN_EVENT_STOPPED_CRASHED.rawValue: lifecycle = .stopped(reason: .crashed)
            case VIR_DOMAIN_EVENT_STOPPED_FAILED.rawValue: lifecycle = .stopped(reason: .failed)
            default: lifecycle = .stopped(reason: .other(detail))
            }
        default: lifecycle = .other(event: event, detail: detail)
        }
        let continuations = subscribers.withLock { $0[domain] ?? [] }
        for continuation in continuations { continuation.yield(lifecycle) }
    }

    /// Lifecycle events of the domain named `name`, from now on.
    ///
    /// libvirtd reports a QEMU that died (SIGKILL, crash) only after ≈ 1.8 s here, so when the domain
    /// is running its QEMU process is also watched through a pidfd: its exit is reported at once as
    /// `.stopped(.crashed)`, and libvirt's own event for it follows.
    public func events(for name: String) -> AsyncStream<DomainLifecycleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DomainLifecycleEvent.self)
        subscribers.withLock { $0[name, default: []].append(continuation) }
        if let pid = qemuPID(ofDomain: name) {
            QEMUProcess.onExit(of: pid) { continuation.yield(.stopped(reason: .crashed)) }
        }
        return stream
    }

    /// Creates and starts a transient domain (libvirt forgets it once it stops).
    public func createTransientDomain(xml: String) throws(LibvirtError) -> String {
        guard let domain = virDomainCreateXML(connection, xml, 0) else {
            throw LibvirtError.last("creating domain")
        }
        defer { virDomainFree(domain) }
        return String(cString: virDomainGetName(domain))
    }

    /// Destroys the domain `name`; succeeds when it is already gone.
    public func destroyDomain(named name: String) throws(LibvirtError) {
        guard let domain = virDomainLookupByName(connection, name) else {
            let error = LibvirtError.last("looking up domain \(name)")
            if error.isNoDomain { return }
            throw error
        }
        defer { virDomainFree(domain) }
        if virDomainDestroy(domain) != 0 {
            let error = LibvirtError.last("destroying domain \(name)")
            if !error.isNoDomain && virDomainIsActive(domain) == 1 { throw error }
        }
    }

    /// Names of running domains carrying swiftkata's metadata.
    public func swiftkataDomains() throws(LibvirtError) -> [String] {
        var domains: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(connection, &domains, UInt32(VIR_CONNECT_LIST_DOMAINS_ACTIVE.rawValue))
        guard count >= 0, let domains else { throw LibvirtError.last("listing domains") }
        defer { free(domains) }
        var names: [String] = []
        for index in 0..<Int(count) {
            guard let domain = domains[index] else { continue }
            defer { virDomainFree(domain) }
            let metadata = virDomainGetMetadata(domain, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), DomainXML.metadataNamespace, 0)
            if let metadata {
                free(metadata)
                names.append(String(cString: virDomainGetName(domain)))
            }
        }
        return names
    }

    /// The guest context id libvirt assigned to the domain's vsock device (auto CID), if it has one.
    public func vsockCID(ofDomain name: String) throws(LibvirtError) -> UInt32? {
        let domain = try lookUpDomain(name)
        defer { virDomainFree(domain) }
        let text = try liveXML(domain, name)
        // <cid auto='yes' address='3'/>
        guard let cid = text.firstRange(of: "<cid ")?.upperBound,
            let address = text[cid...].firstRange(of: "address='")?.upperBound
        else { return nil }
        return UInt32(text[address...].prefix { $0.isNumber })
    }

    /// The domain `name` (the caller frees it), or libvirt's error naming it.
    func lookUpDomain(_ name: String) throws(LibvirtError) -> virDomainPtr {
        guard let domain = virDomainLookupByName(connection, name) else { throw LibvirtError.last("looking up domain \(name)") }
        return domain
    }

    /// The running domain's XML as libvirt has it now (live sizes, aliases, device addresses).
    func liveXML(_ domain: virDomainPtr, _ name: String) throws(LibvirtError) -> String {
        guard let xml = virDomainGetXMLDesc(domain, 0) else { throw LibvirtError.last("reading the XML of domain \(name)") }
        defer { free(xml) }
        return String(cString: xml)
    }

    /// The QEMU process id of a running domain, read from libvirt's pid file.
    public func qemuPID(ofDomain name: String) -> pid_t? {
        QEMUProcess.pid(ofDomain: name)
    }
}
