import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SMSBatch
import Synchronization

/// The limits a public endpoint needs (README: "The webhook"): slow or idle clients are cut
/// off, oversized requests refused, and no client can hold what others need.
public struct WebhookLimits: Sendable {
    /// Bytes of a request line and headers.
    public var maxHeaderBytes = 16 * 1024
    /// Bytes of a body (a report is under 1 KB; a list of them may be larger).
    public var maxBodyBytes = 1 << 20
    /// Seconds for a request's head to arrive, counted from the connection's start or the
    /// previous answer: an idle keep-alive connection is closed after this too.
    public var headerTimeout: Double = 15
    /// Seconds for the body to arrive once the head has.
    public var bodyTimeout: Double = 30
    /// Connections open at once; more are closed as they come.
    public var maxConnections = 1024
    /// Connections open at once from one address: one client cannot take every slot
    /// (the provider pushes from a few addresses, many at a time).
    public var maxConnectionsPerAddress = 256
    public init() {}
}

/// `smsbatch webhook`: receives the provider's delivery-report pushes (SPEC §11) on SwiftNIO.
///
/// Answers (JSON bodies `{status, code, message}`):
/// - 200 once the reports are committed to the ledger (a report for an unknown message is
///   kept as unmatched: still 200, the provider must not retry it forever);
/// - 401 without `Authorization: Bearer <secret>` (compared in constant time, never logged);
/// - 400 for a body that is not a readable report; 413 for a body over the limit; 431 for
///   headers over the limit; 405 for a method other than POST (GET `/healthz` answers 200);
/// - 503 when the ledger cannot record (the provider retries).
public final class WebhookServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    public let inbox: DeliveryInbox
    /// The bound port.
    public let port: Int

    public init(listen: String, port: Int, secret: String, inbox: DeliveryInbox, limits: WebhookLimits = WebhookLimits(),
                log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let shared = SharedState(secret: Array("Bearer \(secret)".utf8), inbox: inbox, limits: limits, log: log)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = ConnectionState()
                    try channel.pipeline.syncOperations.addHandler(RequestSizeGuard(shared: shared, connection: connection))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(WebhookHandler(shared: shared, connection: connection))
                }
            }
        do {
            channel = try bootstrap.bind(host: listen, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.inbox = inbox
        self.port = channel.localAddress?.port ?? port
    }

    /// Stops accepting, closes every connection and shuts the event loop down; the inbox
    /// is stopped by its owner.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// What every connection shares.
final class SharedState: Sendable {
    let secret: [UInt8]
    let inbox: DeliveryInbox
    let limits: WebhookLimits
    let log: @Sendable (String) -> Void
    let connections = Atomic<Int>(0)
    /// Open connections by remote address.
    let perAddress = Locked<[String: Int]>([:])

    init(secret: [UInt8], inbox: DeliveryInbox, limits: WebhookLimits, log: @escaping @Sendable (String) -> Void) {
        self.secret = secret
        self.inbox = inbox
        self.limits = limits
        self.log = log
    }

    /// Whether `header` is exactly `Bearer <secret>`, in time that does not depend on where
    /// it differs.
    func authorized(_ header: String?) -> Bool {
        guard let header else { return false }
        let given = Array(header.utf8)
        var diff = UInt8(given.count == secret.count ? 0 : 1)
        for i in 0..<secret.count { diff |= secret[i] ^ (i < given.count ? given[i] : 0) }
        return diff == 0
    }
}

/// One connection's request state, shared by its two handlers on its event loop.
final class ConnectionState {
    /// Bytes received for the request being read, before its head was complete.
    var headBytes = 0
    var headDone = false
}

/// First in the pipeline: refuses a request whose head grows past `maxHeaderBytes` (the HTTP
/// parser itself sets no limit), and counts connections against `maxConnections`.
final class RequestSizeGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let shared: SharedState
    private let connection: ConnectionState
    private var counted = false
    private var address: String?
    private var refused = false

    init(shared: SharedState, connection: ConnectionState) {
        self.shared = shared
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        let open = shared.connections.add(1, ordering: .relaxed).newValue
        counted = true
        let address = context.remoteAddress?.ipAddress ?? "?"
        self.address = address
        let fromThere = shared.perAddress.withLock { $0[address, default: 0] += 1; return $0[address]! }
        if open > shared.limits.maxConnections || fromThere > shared.limits.maxConnectionsPerAddress {
            refuse(context, "503 Service Unavailable", "too many connections")
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            shared.connections.subtract(1, ordering: .relaxed)
            if let address {
                shared.perAddress.withLock { open in
                    open[address, default: 1] -= 1
                    if open[address] == 0 { open[address] = nil }
                }
            }
        }
        counted = false
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        if !connection.headDone { connection.headBytes += buffer.readableBytes }
        context.fireChannelRead(data)
        if !connection.headDone && connection.headBytes > shared.limits.maxHeaderBytes {
            refuse(context, "431 Request Header Fields Too Large", "the request line and headers are over \(shared.limits.maxHeaderBytes) bytes")
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ status: String, _ message: String) {
        refused = true
        let body = "{\"status\":\(status.prefix(3)),\"code\":\"REFUSED\",\"message\":\"\(message)\"}"
        let text = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }
}

/// Reads one request at a time, checks it, hands its reports to the inbox and answers once
/// they are committed.
final class WebhookHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let shared: SharedState
    private let connection: ConnectionState
    private var body: [UInt8] = []
    private var head: HTTPRequestHead?
    /// Set once this request has been answered early (401, 413 …): the rest is ignored.
    private var answered = false
    private var deadline: Scheduled<Void>?

    init(shared: SharedState, connection: ConnectionState) {
        self.shared = shared
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, shared.limits.headerTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    /// Closes the connection unless the current stage ends within `seconds`.
    private func arm(_ context: ChannelHandlerContext, _ seconds: Double) {
        deadline?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
            bound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            connection.headDone = true
            head = h
            body = []
            answered = false
            arm(context, shared.limits.bodyTimeout)
            if h.method == .GET && h.uri.split(separator: "?").first == "/healthz" { return }
            guard h.method == .POST else {
                return answer(context, .methodNotAllowed, "METHOD_NOT_ALLOWED", "delivery reports are POSTed", close: true)
            }
            guard shared.authorized(h.headers.first(name: "authorization")) else {
                return answer(context, .unauthorized, "UNAUTHORIZED", "missing or wrong bearer secret", close: true)
            }
            if let length = h.headers.first(name: "content-length").flatMap({ Int($0) }), length > shared.limits.maxBodyBytes {
                return answer(context, .payloadTooLarge, "PAYLOAD_TOO_LARGE", "the body is over \(shared.limits.maxBodyBytes) bytes", close: true)
            }
        case .body(var chunk):
            guard !answered else { return }
            if body.count + chunk.readableBytes > shared.limits.maxBodyBytes {
                return answer(context, .payloadTooLarge, "PAYLOAD_TOO_LARGE", "the body is over \(shared.limits.maxBodyBytes) bytes", close: true)
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            deadline?.cancel()
            guard !answered, let head else { return }
            if head.method == .GET { return answer(context, .ok, "OK", "up", close: false) }
            let reports: [DeliveryReport]
            do {
                let read = try WebhookPayload.read(body)
                reports = read.reports
                for why in read.refused { shared.log("warning: a pushed report was not readable: \(why)") }
            } catch {
                guard case .unreadable(let why) = error else { return }
                return answer(context, .badRequest, "BAD_REQUEST", why, close: false)
            }
            body = []
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let loop = context.eventLoop
            shared.inbox.submit(reports) { result in
                loop.execute {
                    let (handler, context) = bound.value
                    switch result {
                    case .success: handler.answer(context, .ok, "OK", "recorded", close: false)
                    case .failure: handler.answer(context, .serviceUnavailable, "LEDGER", "cannot record now; retry later", close: true)
                    }
                }
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func answer(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String, close: Bool) {
        answered = true
        connection.headDone = false
        connection.headBytes = 0
        var text = ""
        JSONValue.object([("status", .int(Int(status.code))), ("code", .string(code)), ("message", .string(message))]).rendered().write(to: &text)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if close { bound.value.close(promise: nil) }
        }
        if !close { arm(context, shared.limits.headerTimeout) }
    }
}
