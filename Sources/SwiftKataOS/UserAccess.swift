import Glibc

/// Whether user `name` may open `path` read-write by its mode bits (owner, group, supplementary
/// groups, other), as the kernel would decide without capabilities; nil without the user or file.
public func userMayReadAndWrite(_ name: String, _ path: String) -> Bool? {
    guard let user = getpwnam(name) else { return nil }
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    let uid = user.pointee.pw_uid
    var groups = [gid_t](repeating: 0, count: 256)
    var count = Int32(groups.count)
    if getgrouplist(user.pointee.pw_name, user.pointee.pw_gid, &groups, &count) < 0 { count = 0 }
    let memberOfGroup = groups.prefix(Int(max(count, 0))).contains(info.st_gid) || user.pointee.pw_gid == info.st_gid
    let bits: mode_t = info.st_uid == uid ? (info.st_mode >> 6) & 7 : memberOfGroup ? (info.st_mode >> 3) & 7 : info.st_mode & 7
    return bits & 6 == 6
}
