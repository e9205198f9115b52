import ContainerdAPI
import Logging
import SwiftProtobuf
import TTRPC

/// Where a pod's task events go: containerd's events service (`EventPublisher`), or a test's recorder.
protocol TaskEventSink: Sendable {
    /// Queues `event` under `topic`; events reach containerd in the order they were published.
    func publish(topic: String, event: some SwiftProtobuf.Message, typeName: String) async
}

extension EventPublisher: TaskEventSink {}

/// Publishes task events to containerd's ttrpc events service (`$TTRPC_ADDRESS`), one at a time in
/// the order they were produced. A failed Forward is retried (1 s, 2 s, … up to 5 tries) before the
/// next event goes, so order holds; a closed connection is redialled at once.
actor EventPublisher {
    private let address: String
    private let namespace: String
    private let logger: Logger
    private var client: TTRPCClient?
    private var queue: [Containerd_Services_Events_Ttrpc_V1_Envelope] = []
    private var sending = false
    private var drained: [CheckedContinuation<Void, Never>] = []

    init(address: String, namespace: String, logger: Logger) {
        self.address = address
        self.namespace = namespace
        self.logger = logger
    }

    /// Events waiting at most. Exits and the other lifecycle events follow containerd's own calls and
    /// stay far below it; past it only what the guest alone can cause (OOMs) is dropped.
    static let maxQueued = 1024
    private var dropped = 0

    /// Queues `event` under `topic`; returns at once.
    func publish(topic: String, event: some SwiftProtobuf.Message, typeName: String) {
        if queue.count >= Self.maxQueued && topic == ContainerdNames.Topic.taskOOM {
            dropped += 1
            if dropped == 1 || dropped % 1000 == 0 {
                logger.warning("event queue full: OOM event dropped", metadata: ["queued": "\(queue.count)", "dropped": "\(dropped)"])
            }
            return
        }
        var envelope = Containerd_Services_Events_Ttrpc_V1_Envelope()
        envelope.timestamp = .currentTime()
        envelope.namespace = namespace
        envelope.topic = topic
        var any = Google_Protobuf_Any()
        any.typeURL = ContainerdNames.TypeURL.event(typeName)
        do { any.value = try event.serializedBytes() } catch {
            logger.error("event does not encode", metadata: ["topic": "\(topic)", "error": "\(error)"])
            return
        }
        envelope.event = any
        queue.append(envelope)
        if !sending {
            sending = true
            Task { await self.drain() }
        }
    }

    /// Events waiting to be delivered (tests).
    var queuedCount: Int { queue.count }

    /// Returns once every event queued so far was delivered (or dropped after its retries).
    func flush() async {
        guard sending else { return }
        await withCheckedContinuation { drained.append($0) }
    }

    private func drain() async {
        while !queue.isEmpty {
            let envelope = queue.removeFirst()
            await deliver(envelope)
        }
        sending = false
        let waiters = drained
        drained = []
        waiters.forEach { $0.resume() }
    }

    private func deliver(_ envelope: Containerd_Services_Events_Ttrpc_V1_Envelope) async {
        var request = Containerd_Services_Events_Ttrpc_V1_ForwardRequest()
        request.envelope = envelope
        for attempt in 0..<5 {
            if attempt > 0 { try? await Task.sleep(for: .seconds(attempt)) }
            do {
                let connected: TTRPCClient
                if let client, client.isActive {
                    connected = client
                } else {
                    connected = try await TTRPCClient.connect(unixSocketPath: address)
                    client = connected
                }
                _ = try await Containerd_Services_Events_Ttrpc_V1_EventsClient(connected).forward(
                    request, metadata: [TTRPCMetadata.namespaceKey: namespace], timeout: .seconds(5))
                return
            } catch {
                logger.warning("publishing event failed", metadata: ["topic": "\(envelope.topic)", "attempt": "\(attempt + 1)", "error": "\(error)"])
                if let client, !client.isActive { await client.close(); self.client = nil }
            }
        }
        logger.error("event dropped after 5 attempts", metadata: ["topic": "\(envelope.topic)"])
    }
}
