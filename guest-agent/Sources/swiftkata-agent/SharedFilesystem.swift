import AgentAPI
import Glibc
import SwiftKataOS
import TTRPC

/// Mounts the pod's shared host directory (virtio-fs or 9p) where container roots are found.
enum SharedFilesystem {
    static func mount(_ shared: Swiftkata_Agent_V1_SharedFilesystem, at defaultPoint: String) throws {
        let point = shared.mountPoint.isEmpty ? defaultPoint : shared.mountPoint
        guard point == defaultPoint else {
            throw TTRPCError(.invalidArgument, "shared file system mount point must be \(defaultPoint), not \(point)")
        }
        guard !shared.tag.isEmpty, shared.tag.utf8.count <= 36, !shared.tag.utf8.contains(UInt8(ascii: ",")) else {
            throw TTRPCError(.invalidArgument, "shared file system tag \"\(shared.tag)\" is empty, too long or contains a comma")
        }
        do { try makeDirectories(point) } catch {
            throw TTRPCError(.internal, "creating the shared file system's mount point: \(error)")
        }
        let result: Int32
        switch shared.type {
        case .sharedFilesystemVirtioFs:
            result = Glibc.mount(shared.tag, point, "virtiofs", 0, nil)
        case .sharedFilesystem9P:
            result = Glibc.mount(shared.tag, point, "9p", 0, "trans=virtio,version=9p2000.L,msize=524288,cache=mmap")
        default:
            throw TTRPCError(.invalidArgument, "unknown shared file system type \(shared.type)")
        }
        guard result == 0 else {
            throw TTRPCError(.internal, "mounting shared file system \(shared.tag) on \(point): \(String(cString: strerror(errno)))")
        }
    }
}
