/// At most one TaskOOM per container per `interval`: a guest that reports OOMs in a loop gets them
/// coalesced, not queued without bound (it names only containers it was given, so the map is bounded
/// by the pod's containers).
struct OOMEventLimiter {
    let interval: Duration
    private var lastPublished: [String: ContinuousClock.Instant] = [:]
    /// How many events were coalesced since the pod began.
    private(set) var coalesced = 0

    init(interval: Duration = .seconds(1)) { self.interval = interval }

    /// Whether an OOM of `containerID` at `now` is published (true) or coalesced (false).
    mutating func admit(_ containerID: String, at now: ContinuousClock.Instant) -> Bool {
        if let last = lastPublished[containerID], now - last < interval {
            coalesced += 1
            return false
        }
        lastPublished[containerID] = now
        return true
    }

    /// Forgets a deleted container.
    mutating func remove(_ containerID: String) { lastPublished[containerID] = nil }
}
