import Foundation
import SMSBatch
import Synchronization

/// How the sandbox behaves (SPEC §8, `smsbatch sandbox` flags).
public struct SandboxOptions: Sendable, CustomStringConvertible {
    /// Port on `host`; 0 = any free port.
    public var port: UInt16 = 0
    /// The IPv4 address listened on: loopback unless a test gives it an address of a
    /// machine-local network (a veth between network namespaces).
    public var host = "127.0.0.1"
    /// The one access token accepted.
    public var token: String
    /// Requests per minute per token before 429; 0 = no limit.
    public var rateLimit: Int = 1000
    /// The rate limit's window in seconds: the provider's minute; shorter only in tests,
    /// so a 429 storm and its Retry-After fit in a few seconds.
    public var rateWindowSeconds: Int = 60
    /// Share (0…1) of send requests answered with a 5xx, accepting nothing.
    public var failRate: Double = 0
    /// Share (0…1) of the other send requests accepted and then left unanswered (the
    /// connection is closed without a response).
    public var dropRate: Double = 0
    /// Delay before every answer, in milliseconds.
    public var latencyMs: Int = 0
    /// Extra delay before the answer to a send only, in milliseconds: tests of requests in
    /// flight whose token check and lookups must still be quick.
    public var sendLatencyMs: Int = 0
    /// Seed of the fault PRNG: the same seed gives the same faults in the same request order.
    public var seed: UInt64 = 1
    /// Seconds from acceptance to a message's final delivery status (SPEC §11).
    public var dlrDelay: Double = 3
    /// Share (0…1) of messages whose delivery fails, spread over realistic failure codes.
    public var dlrFailRate: Double = 0.05
    /// Share (0…1) of delivery reports pushed twice.
    public var dlrDupRate: Double = 0
    /// Where delivery reports are pushed (the customer's webhook); nil: not pushed.
    public var webhook: String?
    /// The bearer secret the pushes carry.
    public var webhookSecret: String = ""
    /// Seconds between a failed push and its retry (the provider's 30 minutes, shortened).
    public var webhookRetry: Double = 2
    /// Pushes in flight at once (tests slow a push storm down with fewer).
    package var webhookConcurrency = 64
    /// The rate window's clock (tests share a virtual one with the sender).
    package var clock: any MonotonicClock = RealClock()

    public init(token: String) { self.token = token }

    /// The options with the token redacted.
    public var description: String {
        "SandboxOptions(port: \(port), token: <REDACTED>, rateLimit: \(rateLimit), failRate: \(failRate), dropRate: \(dropRate), latencyMs: \(latencyMs), seed: \(seed), dlrDelay: \(dlrDelay), dlrFailRate: \(dlrFailRate), webhook: \(webhook ?? "none"))"
    }
}

/// The built-in simulator of the Mobtexting / BICS CPaaS REST API v2, served over real HTTP
/// on 127.0.0.1 under `/api/v2/` (SPEC §8).
///
/// Implements `GET auth/me`, `POST sms/send/json`, `POST sms/send`, `GET sms/status`,
/// `GET finance/balance` and the test hook `GET sandbox/accepted`, with Bearer or
/// `access_token` auth, the `_method` override, a per-token rate limit and seeded faults.
/// Accepted messages are kept in memory for the server's lifetime.
public final class SandboxServer: Sendable {
    /// The options it was made with.
    public let options: SandboxOptions
    let core: SandboxCore
    private let http: HTTPServer

    public init(options: SandboxOptions) {
        self.options = options
        let core = SandboxCore(options: options)
        self.core = core
        self.http = HTTPServer(host: options.host, port: options.port) { core.handle($0) }
    }

    deinit { stop() }

    /// Starts listening on `options.host` and returns the bound port.
    /// - Throws: `HTTPServerError` when the port cannot be bound (in use, no permission).
    @discardableResult
    public func start() throws -> UInt16 { try http.start() }

    /// Stops listening and closes every connection. Accepted messages stay readable
    /// through `accepted`.
    public func stop() {
        http.stop()
        core.pusher?.stop()
    }

    /// The bound port (0 before `start`).
    public var port: UInt16 { http.port }

    /// `http://HOST:PORT/api/v2/`
    public var endpoint: String { "http://\(options.host):\(http.port)/api/v2/" }

    /// What was accepted so far: nodes in total, nodes whose non-empty custom had been
    /// accepted before, and the distinct non-empty customs (as `GET sandbox/accepted`).
    public var accepted: (count: Int, repeats: Int, customs: Set<String>) {
        core.state.withLock { s in
            s.catchUp()
            return (s.messages.count, s.repeats, Set(s.customs))
        }
    }

    /// Send requests accepted so far (each is one group).
    var acceptedRequests: Int { core.state.withLock { $0.groups.count } }

    /// Arrival times in seconds (monotonic) of every authenticated request but
    /// `sandbox/accepted`, in order.
    var arrivals: [Double] { core.state.withLock { $0.arrivals.map { Double($0) / 1e9 } } }

    /// Arrival times in seconds (monotonic) of the send requests (POST) alone, in order: what
    /// `requests_per_minute` limits.
    var sendArrivals: [Double] { core.state.withLock { $0.sendArrivals.map { Double($0) / 1e9 } } }

    /// Answers one request in-process, without a socket (benchmarks and tests).
    func handle(_ request: HTTPRequest) -> HTTPAction { core.handle(request) }
}

// MARK: - Core

/// The API behind the sockets; every connection thread calls `handle`.
final class SandboxCore: Sendable {
    let options: SandboxOptions
    let state: Locked<SandboxState>

    /// Times without an offset are the provider's local time, India (no DST).
    static let providerZone = TimeZone(identifier: "Asia/Kolkata") ?? TimeZone(secondsFromGMT: 19_800)!

    /// Pushes delivery reports when `options.webhook` is set.
    let pusher: DeliveryPusher?

    init(options: SandboxOptions) {
        self.options = options
        self.state = Locked(SandboxState(seed: options.seed))
        pusher = options.webhook.map {
            DeliveryPusher(url: $0, secret: options.webhookSecret, retryAfter: options.webhookRetry, dupRate: options.dlrDupRate,
                           seed: options.seed, clock: options.clock, concurrency: options.webhookConcurrency)
        }
        if let pusher {
            pusher.run { [weak self] index in
                guard let self else { return nil }
                return self.state.withLock { s in
                    self.delivery(of: index, in: s, now: .infinity).map { self.pushPayload(index: index, delivery: $0, in: s) }
                }
            }
        }
    }

    enum Endpoint {
        case authMe, sendJSON, send, status, balance, accepted, delivered

        init?(_ path: Substring) {
            switch path {
            case "auth/me": self = .authMe
            case "sms/send/json": self = .sendJSON
            case "sms/send": self = .send
            case "sms/status": self = .status
            case "finance/balance": self = .balance
            case "sandbox/accepted": self = .accepted
            case "sandbox/delivered": self = .delivered
            default: return nil
            }
        }

        var method: String {
            switch self {
            case .sendJSON, .send: "POST"
            default: "GET"
            }
        }

        /// Sends may be faulted; look-ups never are, so a client can always find out.
        var isSend: Bool { self == .sendJSON || self == .send }
    }

    enum Fault { case none, fail(Int), drop }

    func handle(_ request: HTTPRequest) -> HTTPAction {
        let action = route(request)
        var delay = options.latencyMs
        if options.sendLatencyMs > 0, let sub = SandboxCore.apiPath(request.path), let endpoint = Endpoint(sub), endpoint.isSend {
            delay += options.sendLatencyMs
        }
        if delay > 0 { Thread.sleep(forTimeInterval: Double(delay) / 1000) }
        return action
    }

    private func route(_ request: HTTPRequest) -> HTTPAction {
        guard let sub = SandboxCore.apiPath(request.path), let endpoint = Endpoint(sub) else {
            return error(404, "NOT_FOUND", "no such API path: \(request.path)")
        }
        let params = request.parameters
        var method = request.method.uppercased()
        if let m = params["_method"], !m.isEmpty { method = m.uppercased() }
        guard method == endpoint.method || (method == "HEAD" && endpoint.method == "GET") else {
            return error(405, "METHOD_NOT_ALLOWED", "\(method) is not allowed here; use \(endpoint.method)", headers: [("Allow", endpoint.method)])
        }

        // Auth: the Authorization header, else access_token in the query or form body.
        var token: String?
        if let auth = request.headers["authorization"] {
            let parts = auth.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = parts[1].trimmingCharacters(in: .whitespaces) }
            else { return error(401, "UNAUTHORIZED", "the Authorization header must be 'Bearer <token>'") }
        } else {
            token = params["access_token"]
        }
        guard let token, !token.isEmpty else {
            return error(401, "UNAUTHORIZED", "missing access token: send 'Authorization: Bearer <token>' or access_token")
        }
        guard token == options.token else { return error(401, "UNAUTHORIZED", "invalid access token") }

        // Rate limit, then the fault draw, in arrival order under the lock.
        let now = UInt64(options.clock.now() * 1e9)
        let limit = endpoint == .accepted || endpoint == .delivered ? 0 : options.rateLimit
        let drawFault = endpoint.isSend && (options.failRate > 0 || options.dropRate > 0)
        let (retryAfter, draw): (Int?, UInt64?) = state.withLock { s in
            if endpoint != .accepted && endpoint != .delivered { s.arrivals.append(now) }
            if endpoint.isSend { s.sendArrivals.append(now) }
            if limit > 0, let wait = s.window.admit(now: now, limit: limit, length: UInt64(options.rateWindowSeconds) * 1_000_000_000) { return (wait, nil) }
            return (nil, drawFault ? s.rng.next() : nil)
        }
        if let retryAfter {
            return error(429, "TOO_MANY_REQUESTS", "more than \(limit) requests in \(options.rateWindowSeconds) s for this token; retry after \(retryAfter) s",
                         headers: [("Retry-After", String(retryAfter))])
        }
        let fault = draw.map(fault(for:)) ?? .none
        if case .fail(let status) = fault {
            let code = status == 500 ? "INTERNAL_ERROR" : status == 502 ? "BAD_GATEWAY" : "SERVICE_UNAVAILABLE"
            return error(status, code, "sandbox fault: nothing was accepted, try again")
        }

        let action: HTTPAction
        switch endpoint {
        case .authMe: action = authMe()
        case .sendJSON: action = sendJSON(request)
        case .send: action = sendSingle(request, params: params)
        case .status: action = status(params)
        case .balance: action = balance()
        case .accepted: action = acceptedSummary()
        case .delivered: action = deliveredSummary()
        }
        if case .drop = fault { return .drop }
        return action
    }

    /// The part after `/api/v2/`, without a trailing slash; nil outside the API.
    static func apiPath(_ path: String) -> Substring? {
        var p = Substring(path)
        while p.contains("//") { p = Substring(p.replacingOccurrences(of: "//", with: "/")) }
        guard p.hasPrefix("/api/v2/") else { return nil }
        p = p.dropFirst(8)
        while p.last == "/" { p = p.dropLast() }
        return p
    }

    /// One PRNG draw: its top 53 bits decide fail / drop / none, its low byte picks the 5xx.
    private func fault(for x: UInt64) -> Fault {
        let u = Double(x >> 11) * 0x1p-53
        if u < options.failRate { return .fail([500, 502, 503][Int(x & 0xFF) % 3]) }
        if options.failRate < 1, (u - options.failRate) / (1 - options.failRate) < options.dropRate { return .drop }
        return .none
    }

    // MARK: - Endpoints

    private func authMe() -> HTTPAction {
        let balance = state.withLock { $0.balance }
        var out: [UInt8] = []
        out.appendASCII("{\"status\":200,\"message\":\"OK\",\"data\":{\"id\":1,\"name\":\"Sandbox account\",\"email\":\"sandbox@example.com\",\"balance\":")
        out.appendDecimal(balance)
        out.appendASCII(",\"currency\":\"INR\"}}")
        return ok(out)
    }

    private func balance() -> HTTPAction {
        let balance = state.withLock { $0.balance }
        var out: [UInt8] = []
        out.appendASCII("{\"status\":200,\"message\":\"OK\",\"data\":{\"balance\":")
        out.appendDecimal(balance)
        out.appendASCII(",\"currency\":\"INR\"}}")
        return ok(out)
    }

    private func acceptedSummary() -> HTTPAction {
        let (count, repeats, customs): (Int, Int, [String]) = state.withLock { s in
            s.catchUp()
            return (s.messages.count, s.repeats, Array(s.customs))
        }
        var out: [UInt8] = []
        out.appendASCII("{\"count\":")
        out.appendDecimal(count)
        out.appendASCII(",\"repeats\":")
        out.appendDecimal(repeats)
        out.appendASCII(",\"customs\":[")
        for (k, c) in customs.sorted().enumerated() {
            if k > 0 { out.append(0x2C) }
            out.appendJSONString(c)
        }
        out.appendASCII("]}")
        return ok(out)
    }

    private func sendJSON(_ request: HTTPRequest) -> HTTPAction {
        let payload: SendPayload
        do {
            payload = try SendPayload.parse(request.body)
        } catch {
            switch error {
            case .syntax(let m): return self.error(400, "BAD_REQUEST", m)
            case .shape(let m): return self.error(422, "VALIDATION_FAILED", m)
            }
        }
        guard !payload.nodes.isEmpty else { return error(422, "VALIDATION_FAILED", "nodes: at least one node is required") }
        var messages: [StoredMessage] = []
        messages.reserveCapacity(payload.nodes.count)
        var errors: [FieldError] = []
        for (k, node) in payload.nodes.enumerated() {
            if let m = validate(node.over(payload.root), node: k, position: k + 1, errors: &errors), errors.isEmpty {
                messages.append(m)
            }
        }
        if !errors.isEmpty { return validationFailed(errors) }
        return accept(messages)
    }

    private func sendSingle(_ request: HTTPRequest, params: [String: String]) -> HTTPAction {
        var fields = SendFields()
        let contentType = request.headers["content-type"]?.lowercased() ?? ""
        if contentType.hasPrefix("application/json") && !request.body.isEmpty {
            do { fields = try SendPayload.parseFields(request.body) } catch {
                switch error {
                case .syntax(let m), .shape(let m): return self.error(400, "BAD_REQUEST", m)
                }
            }
        }
        for name in ["to", "custom", "message", "sender", "service", "time"] {
            if let v = params[name] { _ = fields.set(name, .string(v)) }
        }
        var errors: [FieldError] = []
        guard let m = validate(fields, node: nil, position: 1, errors: &errors), errors.isEmpty else {
            return validationFailed(errors)
        }
        return accept([m])
    }

    private func status(_ params: [String: String]) -> HTTPAction {
        func param(_ name: String) -> String? {
            guard let v = params[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let id = param("id"), mobile = param("mobile"), cid = param("cid"), groupID = param("group_id")
        guard id != nil || mobile != nil || cid != nil || groupID != nil else {
            return error(422, "VALIDATION_FAILED", "give one of id, mobile, cid or group_id")
        }
        let page = max(1, param("page").flatMap { Int($0) } ?? 1)
        let perPage = 100
        // An unparseable mobile matches nothing (an empty page, not an error).
        let normalised = mobile.map { SandboxCore.normaliseMobile($0) ?? "" }

        struct Row { var message: StoredMessage; var group: StoredGroup; var delivery: SandboxDelivery? }
        let now = options.clock.now()
        let (total, rows): (Int, [Row]) = state.withLock { s in
            s.catchUp()
            var hits: [Int]
            if let id {
                hits = []
                if let colon = id.lastIndex(of: ":"), let g = s.groupByID[String(id[..<colon])],
                   let n = Int(id[id.index(after: colon)...]), n >= 1, n <= s.groups[Int(g)].count {
                    hits = [s.groups[Int(g)].first + n - 1]
                }
            } else if let groupID {
                hits = s.groupByID[groupID].map { g in Array(s.groups[Int(g)].first..<(s.groups[Int(g)].first + s.groups[Int(g)].count)) } ?? []
            } else if let cid {
                hits = s.messages(custom: cid)
            } else {
                hits = s.messages(mobile: normalised ?? "")
            }
            // Further selectors narrow the first one down.
            let g = groupID.map { s.groupByID[$0] ?? -1 }
            hits = hits.filter { k in
                let m = s.messages[k]
                return (g == nil || m.group == g!) && (cid == nil || m.custom == cid!) && (normalised == nil || m.mobile == normalised!)
            }
            // A page far past the end is an empty page, not an overflow (found by make fuzz).
            let (from, overflow) = (page - 1).multipliedReportingOverflow(by: perPage)
            guard !overflow, from < hits.count else { return (hits.count, []) }
            let rows = hits[from..<min(hits.count, from + perPage)].map { k in
                Row(message: s.messages[k], group: s.groups[Int(s.messages[k].group)], delivery: delivery(of: k, in: s, now: now))
            }
            return (hits.count, rows)
        }

        var out: [UInt8] = []
        out.reserveCapacity(rows.count * 300 + 200)
        out.appendASCII("{\"status\":200,\"message\":\"OK\",\"data\":[")
        for (k, row) in rows.enumerated() {
            let m = row.message
            if k > 0 { out.append(0x2C) }
            out.appendASCII("{\"id\":")
            out.appendJSONString(row.group.id + ":" + String(m.position))
            out.appendASCII(",\"mobile\":")
            out.appendJSONString(m.mobile)
            out.appendASCII(",\"status\":")
            out.appendJSONString(row.delivery?.status ?? "AWAITING-DLR")
            out.appendASCII(",\"units\":")
            out.appendDecimal(Int(m.units))
            out.appendASCII(",\"customid\":")
            out.appendJSONString(m.custom)
            out.appendASCII(",\"delivered_at\":")
            if let d = row.delivery { out.appendJSONString(UTCTime.iso(d.at)) } else { out.appendASCII("null") }
            out.appendASCII(",\"group_id\":")
            out.appendJSONString(row.group.id)
            out.appendASCII(",\"submitted_at\":")
            out.appendJSONString(UTCTime.iso(row.group.submittedAt))
            out.appendASCII(",\"scheduled_at\":")
            if let t = m.scheduledAt { out.appendJSONString(UTCTime.iso(t)) } else { out.appendASCII("null") }
            out.appendASCII(",\"service\":")
            out.appendJSONString(sandboxServices[Int(m.service)])
            out.appendASCII(",\"sender\":")
            out.appendJSONString(m.sender)
            out.append(0x7D)
        }
        let lastPage = max(1, (total + perPage - 1) / perPage)
        out.appendASCII("],\"links\":{")
        for (k, (name, target)) in [("first", 1), ("last", lastPage), ("prev", page - 1), ("next", page + 1)].enumerated() {
            if k > 0 { out.append(0x2C) }
            out.appendJSONString(name)
            out.append(0x3A)
            if target < 1 || target > lastPage { out.appendASCII("null") } else { out.appendJSONString(statusLink(params, page: target)) }
        }
        out.appendASCII("},\"meta\":{\"page\":")
        out.appendDecimal(page)
        out.appendASCII(",\"per_page\":")
        out.appendDecimal(perPage)
        out.appendASCII(",\"total\":")
        out.appendDecimal(total)
        out.appendASCII(",\"last_page\":")
        out.appendDecimal(lastPage)
        out.appendASCII("}}")
        return ok(out)
    }

    /// The query of a page of the same look-up, as `links` gives it (the token left out).
    private func statusLink(_ params: [String: String], page: Int) -> String {
        var items = params.filter { $0.key != "page" && $0.key != "access_token" }.sorted { $0.key < $1.key }
            .map { URLQueryItem(name: $0.key, value: $0.value) }
        items.append(URLQueryItem(name: "page", value: String(page)))
        var c = URLComponents()
        c.path = "/api/v2/sms/status"
        c.queryItems = items
        return c.string ?? "/api/v2/sms/status?page=\(page)"
    }

    // MARK: - Accepting

    /// Stores the messages as one group and answers with their ids.
    private func accept(_ batch: [StoredMessage]) -> HTTPAction {
        let groupID = UUID().uuidString.lowercased()
        let now = Int64(Date().timeIntervalSince1970)
        let acceptedAt = options.clock.now()
        var units = 0
        for m in batch { units += Int(m.units) }
        state.withLock { s in
            let g = Int32(s.groups.count)
            s.groupByID[groupID] = g
            s.groups.append(StoredGroup(id: groupID, first: s.messages.count, count: batch.count, submittedAt: now, acceptedAt: acceptedAt))
            // Queued under the lock: pushes keep the order of acceptance.
            pusher?.enqueue(s.messages.count..<(s.messages.count + batch.count), due: acceptedAt + options.dlrDelay)
            for var m in batch {
                m.group = g
                s.messages.append(m)
            }
            s.balance -= units
        }

        var out: [UInt8] = []
        out.reserveCapacity(batch.count * (groupID.utf8.count + 110) + 200)
        out.appendASCII("{\"status\":\"OK\",\"message\":\"")
        out.appendDecimal(batch.count)
        out.appendASCII(batch.count == 1 ? " message accepted\"" : " messages accepted\"")
        out.appendASCII(",\"data\":{\"group_id\":\"")
        out.append(contentsOf: groupID.utf8)
        out.appendASCII("\",\"messages\":[")
        for (k, m) in batch.enumerated() {
            if k > 0 { out.append(0x2C) }
            out.appendASCII("{\"id\":\"")
            out.append(contentsOf: groupID.utf8)
            out.append(0x3A)
            out.appendDecimal(k + 1)
            out.appendASCII("\",\"mobile\":\"")
            out.append(contentsOf: m.mobile.utf8)  // '+' and digits: nothing to escape
            out.appendASCII("\",\"status\":\"AWAITING-DLR\",\"units\":")
            out.appendDecimal(Int(m.units))
            out.appendASCII(",\"customid\":")
            out.appendJSONString(m.custom)
            out.append(0x7D)
        }
        out.appendASCII("]}}")
        return ok(out)
    }

    // MARK: - Validation

    struct FieldError {
        var node: Int?
        var field: String
        var code: String
        var message: String
    }

    /// The message to store for one node's effective fields, or nil after appending its
    /// errors.
    private func validate(_ f: SendFields, node: Int?, position: Int, errors: inout [FieldError]) -> StoredMessage? {
        let before = errors.count
        func fail(_ field: String, _ code: String, _ message: String) {
            errors.append(FieldError(node: node, field: field, code: code, message: message))
        }
        func text(_ field: String, _ v: FieldValue?) -> String? {
            switch v {
            case nil: return nil
            case .string(let s), .number(let s): return s
            case .other(let kind):
                fail(field, "INVALID_TYPE", "\(field) must be a string, not \(kind)")
                return nil
            }
        }

        var mobile = ""
        if let to = text("to", f.to) {
            if to.isEmpty { fail("to", "REQUIRED", "mobile number is required") }
            else if let m = SandboxCore.normaliseMobile(to) { mobile = m }
            else { fail("to", "INVALID_MOBILE", "invalid mobile number") }
        } else if f.to == nil { fail("to", "REQUIRED", "mobile number is required") }

        var message = text("message", f.message)
        if f.message == nil { fail("message", "REQUIRED", "message is required") }
        else if let m = message, SandboxCore.isBlank(m) { fail("message", "REQUIRED", "message is empty"); message = nil }

        var service: UInt8 = 0
        if let s = text("service", f.service) {
            if s.isEmpty { fail("service", "REQUIRED", "service is required") }
            else if let k = SandboxCore.serviceIndex(s) { service = k }
            else { fail("service", "INVALID_SERVICE", "unknown service '\(s)': use one of T, P, S, G, VOC, WAP, RCS, VBR") }
        } else if f.service == nil { fail("service", "REQUIRED", "service is required") }

        var sender = ""
        if let s = text("sender", f.sender) {
            sender = s.trimmingCharacters(in: .whitespaces)
            if sender.isEmpty { fail("sender", "REQUIRED", "sender is required") }
        } else if f.sender == nil { fail("sender", "REQUIRED", "sender is required") }

        var scheduledAt: Int64?
        if var t = text("time", f.time), !t.isEmpty {
            scheduledAt = t.withUTF8 { ScheduleParser.parse($0, timeZone: SandboxCore.providerZone) }
            if scheduledAt == nil { fail("time", "INVALID_TIME", "invalid time: use ISO 8601 or YYYY-MM-DD HH:MM:SS") }
        }

        let custom = text("custom", f.custom) ?? ""
        guard errors.count == before, var msg = message else { return nil }
        let units = service < 4 ? msg.withUTF8 { SegmentCounter.count($0).segments } : 1
        return StoredMessage(mobile: mobile, custom: custom, sender: sender, position: Int32(position),
                             units: Int32(clamping: units), service: service, scheduledAt: scheduledAt)
    }

    /// `+` and 8–15 digits, the first not 0, from a number written with optional spaces,
    /// `-`, `.`, `(`, `)` and one leading `+`; nil when it is not such a number.
    static func normaliseMobile(_ s: String) -> String? {
        var digits = 0
        var first: UInt8 = 0
        var plus = false
        var clean = true  // already `+digits`
        for b in s.utf8 {
            switch b {
            case 0x30...0x39:
                if digits == 0 { first = b }
                digits += 1
            case 0x2B:
                guard !plus, digits == 0 else { return nil }
                plus = true
            case 0x20, 0x09, 0x2D, 0x2E, 0x28, 0x29:
                clean = false
            default:
                return nil
            }
        }
        guard (8...15).contains(digits), first != 0x30 else { return nil }
        if clean && plus && s.utf8.first == 0x2B { return s }
        return String(unsafeUninitializedCapacity: digits + 1) { buf in
            buf[0] = 0x2B
            var n = 1
            for b in s.utf8 where b &- 0x30 < 10 {
                buf[n] = b
                n += 1
            }
            return n
        }
    }

    /// Empty, or nothing but white space.
    static func isBlank(_ s: String) -> Bool {
        for b in s.utf8 {
            if b == 0x20 || (0x09...0x0D).contains(b) { continue }
            if b < 0x80 { return false }
            return s.unicodeScalars.allSatisfy(\.properties.isWhitespace)
        }
        return true
    }

    static func serviceIndex(_ s: String) -> UInt8? {
        if let k = sandboxServices.firstIndex(of: s) { return UInt8(k) }
        let upper = s.trimmingCharacters(in: .whitespaces).uppercased()
        return sandboxServices.firstIndex(of: upper).map { UInt8($0) }
    }

    // MARK: - Answers

    private func ok(_ body: [UInt8]) -> HTTPAction { .respond(status: 200, headers: [], body: body) }

    private func error(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) -> HTTPAction {
        .respond(status: status, headers: headers, body: HTTPServer.errorBody(status, code, message))
    }

    /// 422 naming the first bad field in `message` and every one in `errors`.
    private func validationFailed(_ errors: [FieldError]) -> HTTPAction {
        func path(_ e: FieldError) -> String { e.node.map { "nodes.\($0).\(e.field)" } ?? e.field }
        var summary = "\(path(errors[0])): \(errors[0].message)"
        if errors.count > 1 { summary += " (and \(errors.count - 1) more error\(errors.count == 2 ? "" : "s"))" }
        var out: [UInt8] = []
        out.reserveCapacity(errors.count * 100 + 200)
        out.appendASCII("{\"status\":422,\"code\":\"VALIDATION_FAILED\",\"message\":")
        out.appendJSONString(summary)
        out.appendASCII(",\"errors\":[")
        for (k, e) in errors.enumerated() {
            if k > 0 { out.append(0x2C) }
            out.append(0x7B)
            if let node = e.node {
                out.appendASCII("\"node\":")
                out.appendDecimal(node)
                out.append(0x2C)
            }
            out.appendASCII("\"field\":")
            out.appendJSONString(e.field)
            out.appendASCII(",\"code\":")
            out.appendJSONString(e.code)
            out.appendASCII(",\"message\":")
            out.appendJSONString(e.message)
            out.append(0x7D)
        }
        out.appendASCII("]}")
        return .respond(status: 422, headers: [], body: out)
    }
}

/// The simulator `send.endpoint: sandbox` sends to: started on first use, in this process,
/// on a free loopback port, and kept for the run.
public final class SandboxLauncher: BuiltInSandbox {
    private let server = Locked<SandboxServer?>(nil)

    public init() {}

    public func endpoint(token: String, send: SendConfig) throws -> String {
        try server.withLock { running in
            if let running { return running.endpoint }
            var options = SandboxOptions(token: token)
            // A rate of 0 takes every limit off (benchmarks); else the simulated account allows
            // what the configuration asks for, and at least the platform's published 1000.
            options.rateLimit = send.requestsPerMinute == 0 || send.statusRequestsPerMinute == 0
                ? 0 : max(1000, send.requestsPerMinute + send.statusRequestsPerMinute)
            let started = SandboxServer(options: options)
            _ = try started.start()
            running = started
            return started.endpoint
        }
    }
}
