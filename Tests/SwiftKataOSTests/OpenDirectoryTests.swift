import Glibc
import SwiftKataOS
import SystemPackage
import Testing

/// Tree removal by descriptor: what a hostile guest can do to a shared directory while the host
/// tears it down must never reach outside it.
@Suite(.serialized) struct OpenDirectoryTests {
    @Test func removesANestedTreeAndLeavesSymlinkTargetsAlone() throws {
        let outside = try Scratch("outside")
        try outside.writeFile("canary")
        let share = try Scratch("share")
        try share.makeDirectory("c1/a/b/c")
        try share.writeFile("c1/a/b/c/file")
        try share.symlink("c1/a/escape", to: outside.path)
        try share.symlink("c1/a/escape-file", to: "\(outside.path)/canary")

        let left = try OpenDirectory(path: share.path).removeTree("c1")
        #expect(left.isEmpty, "\(left)")
        #expect(!share.exists("c1"))
        #expect(outside.exists("canary"), "a symlink's target was removed")
    }

    /// The attack from the security review: between listing a directory and removing its entries,
    /// the guest swaps the directory for a symlink to a host directory. Removal by path then
    /// unlinks the host's files; removal by descriptor keeps working on the directory it opened.
    @Test func aDirectorySwappedForASymlinkAfterListingIsNotFollowed() throws {
        let host = try Scratch("host-etc")
        try host.makeDirectory("victim")
        try host.writeFile("victim/passwd")
        try host.writeFile("passwd")
        let share = try Scratch("share-race")
        try share.makeDirectory("c1/dir")
        try share.writeFile("c1/dir/passwd")
        try share.writeFile("c1/dir/victim")

        let sharePath = share.path
        OpenDirectory.afterListingForTesting = { listed in
            guard listed == "\(sharePath)/c1/dir" else { return }
            // The guest's move: the listed "dir" becomes a symlink to the host's directory.
            rename("\(sharePath)/c1/dir", "\(sharePath)/moved")
            Glibc.symlink(host.path, "\(sharePath)/c1/dir")
        }
        defer { OpenDirectory.afterListingForTesting = nil }
        _ = try OpenDirectory(path: share.path).removeTree("c1")

        #expect(host.exists("passwd"), "the shim removed a host file through a swapped symlink")
        #expect(host.exists("victim/passwd"))
        #expect(!share.exists("moved/passwd"), "the directory that was opened was emptied")
    }

    @Test func stopsAtAMountBoundary() throws {
        let share = try Scratch("share-mount")
        try share.makeDirectory("c1/volume")
        try share.mountTmpfs("c1/volume")
        try share.writeFile("c1/volume/data")
        try share.writeFile("c1/own")

        let left = try OpenDirectory(path: share.path).removeTree("c1")
        #expect(left.first?.errno == .resourceBusy, "\(left)")
        #expect(share.exists("c1/volume/data"), "removal descended into a mounted volume")
        #expect(!share.exists("c1/own"))
    }

    /// A bind mount of the same file system has the same st_dev: the mount id tells it apart.
    @Test func stopsAtABindMountOfTheSameFileSystem() throws {
        let share = try Scratch("share-bind")
        try share.makeDirectory("source")
        try share.writeFile("source/keep")
        try share.makeDirectory("c1/volume")
        #expect(mount("\(share.path)/source", "\(share.path)/c1/volume", nil, UInt(MS_BIND), nil) == 0)

        let left = try OpenDirectory(path: share.path).removeTree("c1")
        #expect(left.first?.errno == .resourceBusy, "\(left)")
        #expect(share.exists("source/keep"), "removal descended into a bind mount")
    }

    @Test func walksWithoutFollowingSymlinksAndCreatesWhatIsMissing() throws {
        let share = try Scratch("walk")
        let outside = try Scratch("walk-outside")
        try share.makeDirectory("c1")
        try share.symlink("c1/mounts", to: outside.path)
        let root = try OpenDirectory(path: share.path)
        #expect(throws: SystemError.self) { try root.openDirectory(relative: "c1/mounts/0", createMode: 0o755) }
        #expect(!outside.exists("0"))
        let made = try root.openDirectory(relative: "c2/mounts/0", createMode: 0o700)
        #expect(made.path == "\(share.path)/c2/mounts/0")
        #expect(share.exists("c2/mounts/0"))
        #expect(throws: SystemError.self) { try root.openDirectory(relative: "c2/../..") }
    }

    @Test func aVeryDeepTreeIsCutAtTheDepthLimitWithAnError() throws {
        let share = try Scratch("deep")
        try share.makeDirectory("c1/" + Array(repeating: "d", count: 20).joined(separator: "/"))
        let left = try OpenDirectory(path: share.path).removeTree("c1", maxDepth: 8)
        #expect(!left.isEmpty)
        #expect(try OpenDirectory(path: share.path).removeTree("c1").isEmpty)
        #expect(!share.exists("c1"))
    }
}
