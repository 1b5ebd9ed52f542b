import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SMSBatch

/// `watch --metrics HOST:PORT` (README "Metrics"), on SwiftNIO:
/// - `GET /metrics`: the Prometheus text exposition;
/// - `GET /healthz`: 200 `ok` while `health` finds nothing wrong, 503 with the problem
///   otherwise (the watcher loop stopped or stuck, the ledger not writable).
/// Anything else is 404 (405 for a method other than GET or HEAD). A connection idle for
/// 30 s, or sending more than 64 KiB without finishing a request, is closed.
public final class MetricsServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    /// The bound port.
    public let port: Int

    /// `health`: why the process is not healthy, nil when it is; called off the event loop
    /// (it may wait on the ledger's lock).
    public init(listen: String, port: Int, exporter: PrometheusExporter, health: @escaping @Sendable () -> String?) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                    try channel.pipeline.syncOperations.addHandler(RequestBytesLimit(limit: 64 * 1024))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(exporter: exporter, health: health))
                }
            }
        do {
            channel = try bootstrap.bind(host: listen, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.port = channel.localAddress?.port ?? port
    }

    /// Stops accepting, closes every connection and shuts the event loop down.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Closes a connection that sends more than `limit` bytes without a request completing
/// (GETs carry no body), or that stays idle past the `IdleStateHandler`'s timeout.
final class RequestBytesLimit: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var received = 0

    init(limit: Int) { self.limit = limit }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        if received > limit { context.close(promise: nil); return }
        context.fireChannelRead(data)
    }

    /// An answer going out ends the request: the count starts again.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        received = 0
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Answers one request at a time.
final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let exporter: PrometheusExporter
    private let health: @Sendable () -> String?
    private var head: HTTPRequestHead?

    init(exporter: PrometheusExporter, health: @escaping @Sendable () -> String?) {
        self.exporter = exporter
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let headOnly = head.method == .HEAD
            guard head.method == .GET || headOnly else {
                return answer(context, .methodNotAllowed, "only GET and HEAD\n", headOnly: false)
            }
            switch path {
            case "/metrics":
                answer(context, .ok, exporter.text(), contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: headOnly)
            case "/healthz":
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let loop = context.eventLoop
                let health = self.health
                DispatchQueue.global().async {
                    let problem = health()
                    loop.execute {
                        let (handler, context) = bound.value
                        if let problem {
                            handler.answer(context, .serviceUnavailable, problem + "\n", headOnly: headOnly)
                        } else {
                            handler.answer(context, .ok, "ok\n", headOnly: headOnly)
                        }
                    }
                }
            default:
                answer(context, .notFound, "not found: /metrics and /healthz are served here\n", headOnly: headOnly)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func answer(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ text: String,
                        contentType: String = "text/plain; charset=utf-8", headOnly: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
