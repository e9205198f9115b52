import Glibc
import Hypervisor
import HypervisorLibvirt
import SwiftKataOS

// swiftkata-vm: the shim's hand on libvirt. The shim daemon stays small and long-lived without
// libvirt.so and its libraries; this short-lived helper links them and does one domain operation:
//
//   swiftkata-vm create --uri URI --name NAME --xml FILE|-
//       destroys a stale domain of that name, creates the transient domain from FILE (- reads the
//       XML from stdin, as the shim passes it), prints
//       `qemu_pid=N vsock_cid=M` (vsock_cid=none without a vsock device)
//   swiftkata-vm resize --uri URI --name NAME --plugged-mib M
//       asks the running domain's guest to have M MiB of its virtio-mem device plugged (the guest
//       plugs or unplugs blocks on its own; the agent waits for it); prints `plugged_mib=M`
//   swiftkata-vm attach-disk --uri URI --name NAME --source /dev/BLOCK --serial SERIAL [--readonly]
//       attaches the host block device to the running domain as a virtio-blk disk the guest finds
//       by SERIAL (nothing if one with that serial is attached already)
//   swiftkata-vm detach-disk --uri URI --name NAME --serial SERIAL
//       asks the running domain to release that disk (a missing one is success)
//   swiftkata-vm destroy --uri URI --name NAME
//       kills QEMU and waits (up to 5 s) for libvirt to remove the domain (`DomainTermination`,
//       qemu:///system only), destroys it if it is still there (a missing one is success), then
//       removes libvirt's log files of the domain (`DomainLogs`)
//
// Errors go to stderr as one line (libvirt's own message); the exit status is 1.

func fail(_ message: String) -> Never {
    FileHandle.standardError(message)
    exit(1)
}

enum FileHandle {
    static func standardError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

func option(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    fail(
        "usage: swiftkata-vm create --uri URI --name NAME --xml FILE | resize --uri URI --name NAME --plugged-mib M | destroy --uri URI --name NAME"
    )
}
let uri = option("--uri", in: arguments) ?? "qemu:///system"
let libvirt: LibvirtConnection
do { libvirt = try LibvirtConnection(uri: uri) } catch { fail("libvirt at \(uri) (is libvirtd running?): \(error.message)") }

switch command {
case "create":
    guard let path = option("--xml", in: arguments), let name = option("--name", in: arguments) else {
        fail("create: --name NAME and --xml FILE are required")
    }
    let xml: String
    do {
        let bytes = path == "-" ? try readToEnd(fd: STDIN_FILENO, limit: 1 << 20, path: "stdin") : try readWholeFile(path, limit: 1 << 20)
        xml = String(decoding: bytes, as: UTF8.self)
    } catch { fail("create: \(path): \(error)") }
    try? libvirt.destroyDomain(named: name)  // a domain of the same pod left by a shim that died
    // A domain that did not come up leaves no logs either: libvirt's message carries QEMU's.
    let removeLogs = { if let directory = DomainLogs.directory(uri: uri) { DomainLogs.remove(domain: name, in: directory) } }
    do { _ = try libvirt.createTransientDomain(xml: xml) } catch {
        removeLogs()
        fail("starting the pod VM \(name): \(error.message)")
    }
    guard let pid = libvirt.qemuPID(ofDomain: name) else {
        try? libvirt.destroyDomain(named: name)
        removeLogs()
        fail("the pod VM \(name) stopped right after it started")
    }
    let cid = (try? libvirt.vsockCID(ofDomain: name)).flatMap { $0 }.map(String.init) ?? "none"
    print("qemu_pid=\(pid) vsock_cid=\(cid)")
case "destroy":
    guard let name = option("--name", in: arguments) else { fail("destroy: --name NAME is required") }
    // QEMU first, and the domain's own clean-up in libvirt awaited: see DomainTermination.
    _ = DomainTermination.kill(domain: name, uri: uri, timeoutMilliseconds: 5_000)
    do { try libvirt.destroyDomain(named: name) } catch { fail("destroying \(name): \(error.message)") }
    if let directory = DomainLogs.directory(uri: uri) {
        for failure in DomainLogs.remove(domain: name, in: directory) { FileHandle.standardError("removing a log of \(name): \(failure)") }
    }
case "resize":
    guard let name = option("--name", in: arguments), let plugged = option("--plugged-mib", in: arguments).flatMap({ Int($0) }),
        (0...(1 << 20)).contains(plugged)
    else { fail("resize: --name NAME and --plugged-mib 0...1048576 are required") }
    do {
        guard let memory = try libvirt.hotplugMemory(ofDomain: name) else { fail("resizing \(name): it was started without hot-pluggable memory") }
        guard plugged <= memory.sizeMiB else { fail("resizing \(name): \(plugged) MiB is more than its \(memory.sizeMiB) MiB of hot-pluggable memory") }
        if memory.requestedMiB != plugged { try libvirt.requestHotplugMemory(plugged, ofDomain: name) }
        print("plugged_mib=\(plugged)")
    } catch { fail("resizing \(name): \(error.message)") }
case "attach-disk":
    guard let name = option("--name", in: arguments), let source = option("--source", in: arguments),
        let serial = option("--serial", in: arguments)
    else { fail("attach-disk: --name NAME, --source /dev/BLOCK and --serial SERIAL are required") }
    do { try libvirt.attachDisk(source: source, serial: serial, readOnly: arguments.contains("--readonly"), toDomain: name) } catch {
        fail("attaching \(source) to \(name): \(error.message)")
    }
case "detach-disk":
    guard let name = option("--name", in: arguments), let serial = option("--serial", in: arguments) else {
        fail("detach-disk: --name NAME and --serial SERIAL are required")
    }
    do { try libvirt.detachDisk(serial: serial, fromDomain: name) } catch { fail("detaching disk \(serial) from \(name): \(error.message)") }
default:
    fail("unknown command \(command): create, resize, attach-disk, detach-disk or destroy")
}
