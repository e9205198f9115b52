import Foundation
import Testing

/// The guest is root in its VM: a privileged container mounts the pod's shared file system itself
/// and attacks the host through it. A local user on the host tries to read a running pod's files.
/// Each check proves the host untouched. Real containerd, libvirtd, QEMU and virtiofsd.
///
/// Part of `ShimEndToEndTests`: its checks for leftovers assume no other pod of the test namespace runs.
extension ShimEndToEndTests {
    /// The guest writes without end into the share's own directory (outside any rootfs or volume)
    /// and plants symlinks to a host canary next to its container's directory: the share is a
    /// bounded tmpfs (ENOSPC long before the host's /run fills), and the teardown removes the
    /// guest's files without following its links.
    @Test func theGuestCannotFillTheHostOrSteerTheTeardown() throws {
        let canary = "\(containerd.directory)/canary"
        try? FileManager.default.removeItem(atPath: canary)
        try FileManager.default.createDirectory(atPath: canary, withIntermediateDirectories: true)
        try "keep".write(toFile: "\(canary)/passwd", atomically: true, encoding: .utf8)
        let runFreeBefore = Self.freeBytes("/run")

        // The container's own directory in the share is what its Delete walks and removes.
        let script = """
            mkdir -p /mnt/share && mount -t virtiofs swiftkata /mnt/share || exit 90
            own=/mnt/share/hostile-fill
            ln -s \(canary) $own/etc && ln -s \(canary)/passwd $own/passwd
            mkdir -p $own/deep/er && ln -s \(canary) $own/deep/er/link && echo planted
            dd if=/dev/zero of=/mnt/share/fill bs=1M count=64 2>&1
            echo "fill: $(du -m /mnt/share/fill | cut -f1) MiB"
            """
        let result = containerd.runContainer("hostile-fill", ["sh", "-c", script], options: ["--privileged"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("No space left on device"), "the share took 64 MiB: \(result.output)")
        let filled = result.output.split(separator: "\n").first { $0.hasPrefix("fill: ") }.flatMap { Int($0.dropFirst(6).split(separator: " ")[0]) }
        #expect((filled ?? 99) <= 16, "\(result.output)")
        #expect(result.output.contains("planted"), "\(result.output)")
        #expect(Self.freeBytes("/run") + (8 << 20) >= runFreeBefore, "the host's /run lost space to the guest")

        #expect(FileManager.default.fileExists(atPath: "\(canary)/passwd"), "the teardown followed a guest's symlink")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// While a pod runs, an unprivileged host user lists and reads nothing of it under the state
    /// directory, the shares there are nosuid and nodev, and its domain boots a read-only kernel.
    @Test func aLocalUserReadsNothingOfARunningPod() throws {
        let id = "hostile-local"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer {
            removeContainer(id)
            #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        }
        let pods = HostLeftovers.podsDirectory
        let pod = try #require(
            try FileManager.default.contentsOfDirectory(atPath: pods).first {
                FileManager.default.fileExists(atPath: "\(pods)/\($0)/shared/\(id)")
            })
        let rootfs = "\(pods)/\(pod)/shared/\(id)/rootfs"
        #expect(FileManager.default.fileExists(atPath: "\(rootfs)/bin/busybox"), "the test looks at the wrong place")

        for command in [
            "ls \(pods)", "ls \(pods)/\(pod)/shared", "cat \(rootfs)/etc/passwd", "ls \(pods)/\(pod)/vm",
            "cat \(pods)/\(pod)/identity.json",
        ] {
            let attempt = PrivateContainerd.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", command])
            #expect(attempt.status != 0, "nobody ran `\(command)`: \(attempt.output)")
        }
        // libvirt chowns a running domain's kernel to QEMU's user: the pod's domain boots a read-only
        // mount of it (where that chown fails), never the file itself. (Other suites boot domains
        // of their own on the raw file meanwhile, so its owner proves nothing here.)
        let domain = try #require(containerd.domainName(of: id))
        let xml = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "dumpxml", domain]).output
        let kernelPath = try #require(
            xml.split(separator: "\n").first { $0.contains("<kernel>") }?
                .replacingOccurrences(of: "<kernel>", with: "").replacingOccurrences(of: "</kernel>", with: "")
                .trimmingCharacters(in: .whitespaces))
        #expect(kernelPath.hasPrefix("/run/swiftkata/guest/vmlinux-"), "\(kernelPath)")
        var kernelFS = statvfs()
        #expect(statvfs(kernelPath, &kernelFS) == 0 && kernelFS.f_flag & 1 != 0, "\(kernelPath) is not on a read-only mount")
        let mountinfo = String(decoding: procFile("/proc/self/mountinfo"), as: UTF8.self)
        let shares = mountinfo.split(separator: "\n").filter {
            $0.split(separator: " ").count > 5 && $0.split(separator: " ")[4].hasPrefix("\(pods)/\(pod)/shared")
        }
        #expect(!shares.isEmpty)
        for line in shares {
            let options = line.split(separator: " ")[5].split(separator: ",")
            #expect(options.contains("nosuid") && options.contains("nodev"), "\(line)")
        }
    }

    private static func freeBytes(_ path: String) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}
