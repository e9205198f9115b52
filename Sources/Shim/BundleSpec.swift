import Glibc
import Hypervisor
import SwiftKataOS

/// The OCI spec (`config.json`) of a container's bundle, as the shim reads it: the pod it belongs to,
/// and the spec bytes the guest agent gets.
struct BundleSpec: Sendable {
    /// Kubernetes' view of a container in a pod, from the CRI annotations.
    enum PodRole: Sendable, Equatable {
        /// Starts a pod: the shim boots the VM for it.
        case sandbox
        /// Joins the pod whose sandbox has this id.
        case container(sandboxID: String)
    }

    static let maxSpecBytes = 4 << 20

    var json: JSONValue

    init(bytes: [UInt8]) throws(ShimError) {
        guard bytes.count <= Self.maxSpecBytes else { throw .invalidArgument("config.json is larger than \(Self.maxSpecBytes) bytes") }
        do {
            json = try JSONValue.decode(bytes)
        } catch {
            throw .invalidArgument("config.json does not parse as JSON: \(error)")
        }
        guard case .object = json else { throw .invalidArgument("config.json is not a JSON object") }
    }

    static func load(bundle: String) throws(ShimError) -> BundleSpec {
        let path = "\(bundle)/config.json"
        guard let bytes = readFile(path, limit: maxSpecBytes + 1) else {
            throw .invalidArgument("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        return try BundleSpec(bytes: bytes)
    }

    var annotations: [String: String] {
        guard case .object(let object)? = json["annotations"] else { return [:] }
        return object.compactMapValues(\.stringValue)
    }

    /// Container-type and sandbox-id annotations of CRI (containerd), CRI-O and dockershim.
    var podRole: PodRole {
        let annotations = annotations
        let type =
            annotations["io.kubernetes.cri.container-type"] ?? annotations["io.kubernetes.cri-o.ContainerType"]
            ?? annotations["io.kubernetes.docker.type"]
        let sandboxID =
            annotations["io.kubernetes.cri.sandbox-id"] ?? annotations["io.kubernetes.cri-o.SandboxID"]
            ?? annotations["io.kubernetes.sandbox.id"]
        if type == "container", let sandboxID, !sandboxID.isEmpty { return .container(sandboxID: sandboxID) }
        return .sandbox
    }

    /// The id of the pod (and VM) this container belongs to.
    func podID(containerID: String) -> String {
        switch podRole {
        case .sandbox: containerID
        case .container(let sandboxID): sandboxID
        }
    }

    var hostname: String? { json["hostname"]?.stringValue }

    /// The network namespace CNI prepared for the pod (a `network` entry with a path).
    var networkNamespacePath: String? {
        namespaces.first(where: { $0.type == "network" })?.path
    }

    /// The spec asks for the host's network (`ctr run --net-host`, Kubernetes' `hostNetwork: true`):
    /// it lists namespaces but no network namespace at all.
    /// The host namespaces the spec asks to share (hostNetwork, hostIPC, hostPID: a type missing
    /// from a spec that lists namespaces), which a container in a VM cannot have.
    var requestedHostNamespaces: [String] {
        guard json["linux"]?["namespaces"]?.arrayValue != nil else { return [] }
        let types = Set(namespaces.map(\.type))
        return ["network", "ipc", "pid"].filter { !types.contains($0) }
    }

    var requestsHostNetwork: Bool {
        guard json["linux"]?["namespaces"]?.arrayValue != nil else { return false }
        return !namespaces.contains { $0.type == "network" }
    }

    /// `linux.sysctl` entries of the network stack, which the VM's network namespace gets.
    var networkSysctls: [String: String] {
        guard case .object(let object)? = json["linux"]?["sysctl"] else { return [:] }
        return object.compactMapValues(\.stringValue).filter { $0.key.hasPrefix("net.") }
    }

    /// What the pod's first container says about the VM to boot.
    var sandboxSetup: SandboxSetup {
        SandboxSetup(
            hostname: hostname, networkNamespace: networkNamespacePath, networkSysctls: networkSysctls,
            cgroup: (json["linux"]?["cgroupsPath"]?.stringValue).flatMap(PodCgroup.init(cgroupsPath:)),
            sizingAnnotations: annotations.filter {
                PodSizing.sandboxAnnotations.contains($0.key) || $0.key.hasPrefix(PodSizing.overridePrefix)
            })
    }

    /// `linux.namespaces`, as (type, path) pairs.
    var namespaces: [(type: String, path: String?)] {
        (json["linux"]?["namespaces"]?.arrayValue ?? []).compactMap { entry in
            guard let type = entry["type"]?.stringValue else { return nil }
            let path = entry["path"]?.stringValue
            return (type, path?.isEmpty == true ? nil : path)
        }
    }

    var rootPath: String? { json["root"]?["path"]?.stringValue }

    /// The container's CPU and memory limits (`linux.resources`), which its pod's VM must hold.
    var limits: ContainerLimits { ContainerLimits(resources: json["linux"]?["resources"]) }

    var terminal: Bool { json["process"]?["terminal"]?.boolValue ?? false }

    /// The spec as the agent gets it: the root is the container's directory in the shared file system,
    /// and bind-mount sources are replaced by their shared copies (`guestSources`, by mount index).
    ///
    /// Namespace paths name host namespaces, which mean nothing in the guest: a `network` path (CNI's
    /// namespace, carried into the VM by `PodNetwork`) becomes the VM's own network; `uts`, `ipc` and
    /// `pid` paths of a pod's container (CRI points them at the sandbox's task pid, or at a target
    /// container's for `kubectl debug --target`) become that container's namespaces in the guest:
    /// `joinTargets` maps a container's host task pid (its anchor's) to its guest pid, and every
    /// other path means the sandbox (`/proc/<sandboxGuestPID>/ns/<type>`); any other type is refused.
    func guestSpec(
        rootInSharedFS: String, guestSources: [Int: String], guestSeccomp: Bool, sandboxGuestPID: Int32? = nil,
        joinTargets: [Int32: Int32] = [:]
    ) throws(ShimError) -> [UInt8] {
        var spec = json
        if case .array(let entries)? = spec["linux"]?["namespaces"] {
            var rewritten: [JSONValue] = []
            for var entry in entries {
                if let type = entry["type"]?.stringValue, let path = entry["path"]?.stringValue, !path.isEmpty {
                    switch type {
                    case "network":
                        entry["path"] = nil
                    case "uts", "ipc", "pid":
                        if let target = Self.hostPID(inNamespacePath: path).flatMap({ joinTargets[$0] }) {
                            entry["path"] = .string("/proc/\(target)/ns/\(type)")
                            break
                        }
                        guard let sandboxGuestPID, sandboxGuestPID > 0 else {
                            throw .invalidArgument("linux.namespaces: cannot join the host's \(type) namespace \(path): the container runs in a VM")
                        }
                        entry["path"] = .string("/proc/\(sandboxGuestPID)/ns/\(type)")
                    default:
                        throw .invalidArgument("linux.namespaces: cannot join the host's \(type) namespace \(path): the container runs in a VM")
                    }
                }
                rewritten.append(entry)
            }
            spec["linux"]?["namespaces"] = .array(rewritten)
        }
        var root = spec["root"] ?? .object([:])
        root["path"] = .string(rootInSharedFS)
        spec["root"] = root
        if case .array(var mounts)? = spec["mounts"] {
            for (index, source) in guestSources where index < mounts.count {
                mounts[index]["source"] = .string(source)
            }
            spec["mounts"] = .array(mounts)
        }
        if !guestSeccomp, case .object? = spec["linux"] {
            spec["linux"]?["seccomp"] = nil
        }
        do {
            return try spec.encoded()
        } catch {
            throw .internalError("re-encoding config.json: \(error)")
        }
    }

    /// The pid of a `/proc/<pid>/ns/<type>` path, as containerd builds them from task pids.
    static func hostPID(inNamespacePath path: String) -> Int32? {
        let parts = path.split(separator: "/")
        guard parts.count == 4, parts[0] == "proc", parts[2] == "ns" else { return nil }
        return Int32(parts[1])
    }

    /// Bind mounts of host paths that must be shared into the guest, by index in `mounts`.
    var hostBindMounts: [(index: Int, source: String, destination: String, readOnly: Bool)] {
        guard let mounts = json["mounts"]?.arrayValue else { return [] }
        var result: [(Int, String, String, Bool)] = []
        for (index, mount) in mounts.enumerated() {
            let options = mount["options"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let isBind = mount["type"]?.stringValue == "bind" || options.contains("bind") || options.contains("rbind")
            guard isBind, let source = mount["source"]?.stringValue, let destination = mount["destination"]?.stringValue else { continue }
            result.append((index, source, destination, options.contains("ro") || options.contains("rro")))
        }
        return result
    }
}
