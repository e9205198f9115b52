/// ttrpc request metadata: a multimap with lower-cased keys, each value sent as its own pair.
public struct TTRPCMetadata: Hashable, Sendable, ExpressibleByDictionaryLiteral {
    /// Pairs in the order they travel on the wire.
    public private(set) var pairs: [(key: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (key, value) in elements { add(key, value) }
    }

    /// The key containerd uses to pass the namespace on every shim call and event.
    public static let namespaceKey = "containerd-namespace-ttrpc"

    public mutating func add(_ key: String, _ value: String) {
        pairs.append((key.lowercased(), value))
    }

    /// Every value of `key`, in order.
    public subscript(key: String) -> [String] {
        let key = key.lowercased()
        return pairs.filter { $0.key == key }.map(\.value)
    }

    public var isEmpty: Bool { pairs.isEmpty }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for pair in pairs {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }
}
