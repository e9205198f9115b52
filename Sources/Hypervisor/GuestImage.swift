import SwiftKataOS

/// The guest's root file system: the image holding the agent that runs as PID 1.
///
/// Two formats, told apart by their first bytes (`hypervisor.image` may name either):
/// - a raw ext4 file system (what `make guest` builds), attached as a read-only virtio-blk disk and
///   mounted as the guest's root. The guest reads only the pages it uses, and no copy lives in QEMU
///   or in guest RAM: under TCG a pod boots ≈ 180 ms sooner and holds ≈ 40 MiB less than with
///   the same files as an initramfs;
/// - a cpio initramfs (plain or compressed), loaded whole into guest RAM by QEMU.
public enum GuestImage: Sendable, Equatable {
    case rootDisk(path: String)
    case initrd(path: String)

    /// How many leading bytes `init(path:header:)` needs: up to ext4's superblock magic.
    public static let headerLength = 1082

    /// The root disk is the guest's first virtio-blk disk.
    public static let rootDevice = "/dev/vda"

    public var path: String {
        switch self {
        case .rootDisk(let path), .initrd(let path): path
        }
    }

    /// For operators: what kind of image this is.
    public var formatName: String {
        switch self {
        case .rootDisk: "ext4 root disk"
        case .initrd: "initramfs"
        }
    }

    /// What the guest kernel needs on its command line to find its root.
    public var kernelParameters: String {
        switch self {
        case .rootDisk: "root=\(Self.rootDevice) ro rootfstype=ext4"
        case .initrd: ""
        }
    }

    /// `command line` with this image's parameters appended.
    public func kernelCommandLine(_ commandLine: String) -> String {
        kernelParameters.isEmpty ? commandLine : "\(commandLine) \(kernelParameters)"
    }

    /// QEMU arguments attaching the image, for boots without libvirt (the KVM probe, benchmarks).
    /// Commas in the path are doubled, as QEMU's option syntax requires.
    public var qemuArguments: [String] {
        switch self {
        case .rootDisk(let path):
            let escaped = path.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
            return ["-drive", "file=\(escaped),if=none,id=guestroot,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=guestroot"]
        case .initrd(let path):
            return ["-initrd", path]
        }
    }

    /// Recognises the format from the file's first `headerLength` bytes; nil for anything else.
    public init?(path: String, header: [UInt8]) {
        if header.count >= Self.headerLength, header[1080] == 0x53, header[1081] == 0xEF {
            self = .rootDisk(path: path)
            return
        }
        let initramfsMagics: [[UInt8]] = [
            Array("070701".utf8), Array("070702".utf8),  // cpio newc / crc
            [0x1F, 0x8B],  // gzip
            [0x28, 0xB5, 0x2F, 0xFD],  // zstd
            [0x02, 0x21, 0x4C, 0x18],  // lz4 (legacy frame, as the kernel expects)
        ]
        if initramfsMagics.contains(where: { header.starts(with: $0) }) {
            self = .initrd(path: path)
            return
        }
        return nil
    }

    /// Reads the head of `path` and recognises it.
    public static func load(path: String) throws(GuestImageError) -> GuestImage {
        let header: [UInt8]
        do { header = try readFileHead(path, limit: headerLength) } catch { throw .unreadable(path: path, reason: error) }
        guard let image = GuestImage(path: path, header: header) else { throw .unknownFormat(path: path) }
        return image
    }
}

/// Why a guest image cannot be used.
public enum GuestImageError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: SystemError)
    case unknownFormat(path: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "guest image \(path): \(reason)"
        case .unknownFormat(let path): "guest image \(path) is neither an ext4 root file system nor a cpio initramfs"
        }
    }
}
