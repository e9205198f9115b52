import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The node's metrics endpoint: `GET /metrics` asks every pod's shim at the time of the scrape
/// (nothing runs between scrapes, so an idle node pays nothing), anything else is 404. Serves
/// HTTP/1.1 on `host:port` until cancelled.
public struct MetricsServer: Sendable {
    public let host: String
    public let port: Int
    public let stateDirectory: String
    let logger: Logger

    public init(host: String, port: Int, stateDirectory: String, logger: Logger) {
        self.host = host
        self.port = port
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Binds, calls `ready` with the bound port (useful with port 0), then serves.
    public func run(ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        ready(server.channel.localAddress?.port ?? port)
        logger.info("serving metrics", metadata: ["address": "\(host):\(server.channel.localAddress?.port ?? port)"])
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await serve(connection) }
                }
            }
        }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { requests, responses in
                var head: HTTPRequestHead?
                for try await part in requests {
                    switch part {
                    case .head(let request): head = request
                    case .body: continue
                    case .end:
                        guard let request = head else { continue }
                        let (status, contentType, body) = await respond(to: request)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: contentType)
                        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await responses.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                        if request.method != .HEAD { try await responses.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
                        try await responses.write(.end(nil))
                        if !request.isKeepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func respond(to request: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        guard request.method == .GET || request.method == .HEAD else { return (.methodNotAllowed, "text/plain", "GET only\n") }
        guard path == "/metrics" else { return (.notFound, "text/plain", "swiftkata metrics are at /metrics\n") }
        let snapshot = await NodeSnapshot.gather(stateDirectory: stateDirectory)
        return (.ok, "text/plain; version=0.0.4; charset=utf-8", MetricsExposition.render(snapshot))
    }
}
