import SwiftKataOS

/// The user libvirt runs QEMU as (qemu.conf `user`, Debian's default libvirt-qemu).
public enum QEMUUser {
    public static let name: String = {
        guard let bytes = readFile("/etc/libvirt/qemu.conf", limit: 1 << 20) else { return "libvirt-qemu" }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let text = String(line).trimmingWhitespace()
            guard text.hasPrefix("user"), let equals = text.firstIndex(of: "=") else { continue }
            let value = String(text[text.index(after: equals)...]).trimmingWhitespace().filter { $0 != "\"" }
            if String(text.prefix(upTo: equals)).trimmingWhitespace() == "user", !value.isEmpty {
                return value.hasPrefix("+") ? String(value.dropFirst()) : value
            }
        }
        return "libvirt-qemu"
    }()
}
