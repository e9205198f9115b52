/// libvirt connection URIs as the hypervisor code compares them.
enum LibvirtURI {
    /// `uri` without its `?query` (`qemu:///system?socket=...` is still the system driver).
    static func withoutQuery(_ uri: String) -> String {
        uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
    }
}
