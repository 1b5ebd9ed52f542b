import Foundation
import Synchronization
internal import CCurl

/// An HTTP answer from the provider.
package struct HTTPReply: Sendable {
    package let status: Int
    package let retryAfter: Double?
    package let body: Data

    /// The body as a JSON object, nil when it is not one (an HTML login page, say).
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }

    /// SPEC §8: `status` may be the integer 200 or the string "OK".
    var bodySaysOK: Bool {
        guard let s = json?["status"] else { return (200..<300).contains(status) }
        if let i = s as? Int { return i == 200 }
        if let t = s as? String { return t.uppercased() == "OK" || t == "200" || t.lowercased() == "success" }
        return false
    }

    /// The provider's `code` and `message` from an error body.
    var errorCodeAndMessage: (String, String) {
        let j = json
        let code = (j?["code"]).map { "\($0)" } ?? "HTTP_\(status)"
        let message = (j?["message"] as? String) ?? HTTPReply.reasonPhrase(status)
        return (code, message)
    }

    /// A Retry-After value as seconds: finite, not negative, at most an hour (`inf`, `nan` or
    /// a year would stop a job for good, and count for ever in the metrics); nil otherwise.
    static func retryAfterSeconds(_ value: String) -> Double? {
        Double(value).flatMap { $0.isFinite && $0 >= 0 ? min($0, 3600) : nil }
    }

    /// The standard reason phrase of a status code (what URLSession's
    /// `HTTPURLResponse.localizedString(forStatusCode:)` gave), for answers without a message.
    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 200..<300: "Success"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 300..<400: "Redirection"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 413: "Payload Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Entity"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 400..<500: "Client Error"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Server Error"
        }
    }
}

/// Why no answer came back. `inDoubt` failures may have reached the provider.
package struct TransportFailure: Error, Sendable {
    package enum Kind: Sendable {
        case timeout, connectionLost, notConnected
        /// Ended by `ProviderClient.abortInFlight()` while in flight.
        case aborted
    }
    package let kind: Kind
    package let message: String
    /// Only `notConnected` (the connection was never made) is certain not to have reached
    /// the provider.
    var inDoubt: Bool { kind != .notConnected }
}

/// Talks HTTP/1.1 to the provider's REST API v2 through libcurl's multi interface.
///
/// One thread of the client's own runs every transfer in a loop around `curl_multi_poll`,
/// which blocks until a socket is ready, a timer is due or a request is handed over
/// (`curl_multi_wakeup`): waiting for a slow answer costs no CPU. Callers hand requests over
/// through a locked queue and are resumed when their transfer ends.
///
/// Sends (POST) go on a fresh connection each, closed afterwards: libcurl silently re-sends a
/// request when a reused keep-alive connection closes without an answer — for a POST a double
/// send the sender could never see. On a connection used once, a drop surfaces as a
/// `connectionLost` failure, and the sender looks the rows up before sending again. Lookups
/// (GET) reuse their connections.
///
/// The token is added to each request and never appears in an error message: messages are
/// built from curl's result code and the endpoint's host and port, never from URLs or curl's
/// error text (with `auth: query` the token is in the URL).
package final class ProviderClient: Sendable {
    private let base: URL
    private let token: String
    private let auth: AuthPlacement
    private let timeout: Int
    /// The host and port failures name.
    private let host: String
    private let port: Int
    private let loop: CurlLoop
    /// Where requests are counted by HTTP status, and sends timed.
    private let metrics: PipelineMetrics

    package init(endpoint: String, token: String, auth: AuthPlacement, timeout: Int, concurrency: Int, metrics: PipelineMetrics = .none) {
        self.metrics = metrics
        base = URL(string: endpoint)!
        self.token = token
        self.auth = auth
        self.timeout = timeout
        let parts = URLComponents(url: base, resolvingAgainstBaseURL: false)
        host = parts?.host ?? "the provider"
        port = parts?.port ?? (base.scheme?.lowercased() == "https" ? 443 : 80)
        loop = CurlLoop(idleConnections: max(concurrency, 1))
    }

    deinit { loop.stop() }

    /// Who the provider counts requests against, for a rate budget shared by several
    /// workers: the SHA-256 of the endpoint and the token (the token itself is never stored).
    package var account: String { FileDigest.sha256(bytes: Array("\(base.absoluteString)\n\(token)".utf8)) }

    /// Ends every transfer in flight at once: each returns `TransportFailure` `.aborted`
    /// (in doubt: the request may have reached the provider). Requests started afterwards
    /// run as usual. Callable from any thread (the second Ctrl-C).
    func abortInFlight() { loop.abortAll() }

    /// New connections this client has opened so far (tests: sends never share one).
    var connectionsOpened: Int { loop.connects.load(ordering: .relaxed) }

    private func url(_ path: String, query: [(String, String)]) -> URL {
        var components = URLComponents(url: base.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        var items = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        if auth == .query { items.append(URLQueryItem(name: "access_token", value: token)) }
        components.queryItems = items.isEmpty ? nil : items
        return components.url!
    }

    private var commonHeaders: [String] {
        var h = ["Accept: application/json"]
        if auth == .header { h.append("Authorization: Bearer \(token)") }
        return h
    }

    func get(_ path: String, query: [(String, String)] = []) async -> Result<HTTPReply, TransportFailure> {
        let answer = await perform(url(path, query: query), headers: commonHeaders, post: nil)
        metrics.request(.lookup, code: try? answer.get().status)
        return answer
    }

    /// POSTs `body` to the endpoint itself (a webhook URL), not to a path under it.
    package func postJSON(body: Data) async -> Result<HTTPReply, TransportFailure> {
        let headers = commonHeaders + ["Content-Type: application/json", "Connection: close", "Expect:"]
        return await perform(base, headers: headers, post: body)
    }

    func postJSON(_ path: String, body: Data) async -> Result<HTTPReply, TransportFailure> {
        // An empty `Expect:` keeps libcurl from waiting for a 100 Continue before the body.
        let headers = commonHeaders + ["Content-Type: application/json", "Connection: close", "Expect:"]
        let started = ContinuousClock.now
        let answer = await perform(url(path, query: []), headers: headers, post: body)
        metrics.sendAnswered(seconds: (ContinuousClock.now - started).seconds, code: try? answer.get().status)
        return answer
    }

    private func perform(_ url: URL, headers: [String], post body: Data?) async -> Result<HTTPReply, TransportFailure> {
        let target = CurlTransfer.Target(host: host, port: port, timeout: timeout)
        guard let transfer = CurlTransfer(url: url.absoluteString, headers: headers, post: body, target: target) else {
            // Nothing left the process: libcurl could not even make the request.
            return .failure(TransportFailure(kind: .notConnected, message: "cannot send to \(host) port \(port): libcurl could not set up the request"))
        }
        return await withCheckedContinuation { continuation in
            transfer.continuation = continuation
            loop.submit(transfer)
        }
    }
}

// MARK: - libcurl

/// libcurl's process-wide setup, done once before the first handle is made.
private let curlReady: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK

/// Owns one `curl_slist` of request header lines.
private final class CurlHeaderList {
    private(set) var list: UnsafeMutablePointer<curl_slist>?

    /// nil when a line cannot be added (out of memory).
    init?(_ lines: [String]) {
        for line in lines {
            // On failure deinit frees the lines added so far.
            guard let grown = curl_slist_append(list, line) else { return nil }
            list = grown
        }
    }

    deinit { curl_slist_free_all(list) }
}

/// One request: owns its easy handle (and, through `headers`, the header list the handle
/// points to, freed after the handle).
private final class CurlTransfer: @unchecked Sendable {
    // @unchecked: handed to the loop thread once, through the locked inbox; only it touches the transfer after that.

    struct Target {
        let host: String
        let port: Int
        let timeout: Int
    }

    let easy: UnsafeMutableRawPointer
    private let headers: CurlHeaderList
    let target: Target
    var continuation: CheckedContinuation<Result<HTTPReply, TransportFailure>, Never>?
    private var body = Data()
    private var retryAfter: Double?

    init?(url: String, headers lines: [String], post: Data?, target: Target) {
        guard curlReady, let easy = curl_easy_init() else { return nil }
        guard let headers = CurlHeaderList(lines) else { curl_easy_cleanup(easy); return nil }
        self.easy = easy
        self.headers = headers
        self.target = target
        let me = Unmanaged.passUnretained(self).toOpaque()
        var ok = [
            smsbatch_curl_setopt_str(easy, CURLOPT_URL, url),
            smsbatch_curl_setopt_str(easy, CURLOPT_PROTOCOLS_STR, "http,https"),
            smsbatch_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1),
            smsbatch_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1),
            smsbatch_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, target.timeout * 1000),
            smsbatch_curl_setopt_str(easy, CURLOPT_USERAGENT, "smsbatch"),
            smsbatch_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headers.list),
            smsbatch_curl_setopt_func(easy, CURLOPT_WRITEFUNCTION, curlWriteBody),
            smsbatch_curl_setopt_ptr(easy, CURLOPT_WRITEDATA, me),
            smsbatch_curl_setopt_func(easy, CURLOPT_HEADERFUNCTION, curlReadHeader),
            smsbatch_curl_setopt_ptr(easy, CURLOPT_HEADERDATA, me),
        ]
        if let post {
            // Each send on a connection of its own, closed after the answer (see ProviderClient).
            ok.append(smsbatch_curl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1))
            ok.append(smsbatch_curl_setopt_long(easy, CURLOPT_FORBID_REUSE, 1))
            ok.append(smsbatch_curl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, post.count))
            // COPYPOSTFIELDS copies the body (after POSTFIELDSIZE, which it then uses).
            ok.append(post.withUnsafeBytes { p in
                p.baseAddress.map { smsbatch_curl_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0)) }
                    ?? smsbatch_curl_setopt_str(easy, CURLOPT_COPYPOSTFIELDS, "")
            })
        } else {
            // As URLSession did: a lookup follows redirects (auth/me to a login page, say).
            ok.append(smsbatch_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 1))
            ok.append(smsbatch_curl_setopt_long(easy, CURLOPT_MAXREDIRS, 5))
            ok.append(smsbatch_curl_setopt_str(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        }
        guard ok.allSatisfy({ $0 == CURLE_OK }) else { return nil }  // deinit frees the handle
    }

    deinit { curl_easy_cleanup(easy) }

    /// Hands the outcome to the waiting caller (once).
    func complete(_ result: Result<HTTPReply, TransportFailure>) {
        continuation?.resume(returning: result)
        continuation = nil
    }

    fileprivate func appendBody(_ bytes: UnsafeRawBufferPointer) { body.append(contentsOf: bytes) }

    /// One header line of an answer, CR LF included. A status line starts a new answer
    /// (after a redirect or a 100 Continue): only the last answer's Retry-After counts.
    fileprivate func header(_ line: UnsafeRawBufferPointer) {
        if line.starts(with: "HTTP/".utf8) { retryAfter = nil; return }
        let name = "retry-after:".utf8
        // Header names are case-insensitive: compare with ASCII capitals lowered.
        guard line.count > name.count,
              zip(line, name).allSatisfy({ a, b in (0x41...0x5A).contains(a) ? a | 0x20 == b : a == b })
        else { return }
        let value = String(decoding: line.dropFirst(name.count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        retryAfter = HTTPReply.retryAfterSeconds(value)
    }

    /// The result of a finished transfer from curl's code.
    func outcome(_ code: CURLcode) -> Result<HTTPReply, TransportFailure> {
        let at = "\(target.host) port \(target.port)"
        switch code {
        case CURLE_OK:
            var status = 0
            _ = smsbatch_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            return .success(HTTPReply(status: status, retryAfter: retryAfter, body: body))
        // The connection was never made: the request certainly did not leave.
        case CURLE_COULDNT_CONNECT:
            var osError = 0
            _ = smsbatch_curl_getinfo_long(easy, CURLINFO_OS_ERRNO, &osError)
            return .failure(TransportFailure(kind: .notConnected, message: "cannot connect to \(at): \(CurlTransfer.describe(errno: Int32(osError)))"))
        case CURLE_COULDNT_RESOLVE_HOST:
            return .failure(TransportFailure(kind: .notConnected, message: "cannot connect to \(at): cannot resolve the host name"))
        case CURLE_COULDNT_RESOLVE_PROXY:
            return .failure(TransportFailure(kind: .notConnected, message: "cannot connect to \(at): cannot resolve the proxy's host name"))
        // Anything else may have happened after the request went out.
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(TransportFailure(kind: .timeout, message: "no answer from \(at) within \(target.timeout) s"))
        default:
            // curl_easy_strerror is a fixed text per code, never the URL.
            let what = String(cString: curl_easy_strerror(code)).lowercased()
            return .failure(TransportFailure(kind: .connectionLost, message: "no answer from \(at): \(what) (curl error \(code.rawValue))"))
        }
    }

    private static func describe(errno e: Int32) -> String {
        switch e {
        case ECONNREFUSED: "connection refused"
        case ENETUNREACH: "network unreachable"
        case EHOSTUNREACH: "host unreachable"
        case 0: "connection failed"
        default: String(cString: strerror(e)).lowercased()
        }
    }

    var abortedFailure: TransportFailure {
        TransportFailure(kind: .aborted, message: "aborted while in flight to \(target.host) port \(target.port); the provider may have received the request")
    }
}

/// CURLOPT_WRITEFUNCTION: a piece of the answer's body. Captures nothing: the transfer comes
/// through the user-data pointer.
private func curlWriteBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let user else { return 0 }
    if let data, n > 0 {
        Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue().appendBody(UnsafeRawBufferPointer(start: data, count: n))
    }
    return n
}

/// CURLOPT_HEADERFUNCTION: one header line.
private func curlReadHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let user else { return 0 }
    if let data, n > 0 {
        Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue().header(UnsafeRawBufferPointer(start: data, count: n))
    }
    return n
}

/// Owns one multi handle and the thread that drives it.
private final class CurlLoop: @unchecked Sendable {
    // @unchecked: only the loop thread uses `multi`, but for the thread-safe curl_multi_wakeup; the rest is in `inbox`.

    private struct Inbox {
        /// Handed over, not yet added to the multi handle.
        var queued: [CurlTransfer] = []
        /// Set by `abortAll`: end every transfer added before it.
        var abortActive = false
        /// Set by `stop`: end everything and leave the loop.
        var stopping = false
    }

    private let multi: UnsafeMutableRawPointer?
    private let inbox = Locked(Inbox())
    private let exited = DispatchSemaphore(value: 0)
    private let started: Bool
    let connects = Atomic<Int>(0)

    /// A loop whose connection cache keeps at most `idleConnections` connections.
    init(idleConnections: Int) {
        multi = curlReady ? curl_multi_init() : nil
        if let multi { _ = smsbatch_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, idleConnections) }
        started = multi != nil
        guard started else { return }
        let thread = Thread { [self] in run() }
        thread.name = "smsbatch-http"
        thread.start()
    }

    deinit { if let multi { curl_multi_cleanup(multi) } }

    /// Hands a transfer to the loop; it completes the transfer's continuation.
    func submit(_ transfer: CurlTransfer) {
        let accepted = inbox.withLock { s in
            guard !s.stopping, started else { return false }
            s.queued.append(transfer)
            return true
        }
        guard accepted, let multi else {
            transfer.complete(.failure(TransportFailure(kind: .notConnected, message: "cannot send to \(transfer.target.host) port \(transfer.target.port): the HTTP client is not running")))
            return
        }
        curl_multi_wakeup(multi)
    }

    /// Ends every transfer handed over so far with `.aborted`.
    func abortAll() {
        guard let multi else { return }
        let queued = inbox.withLock { s in
            s.abortActive = true
            defer { s.queued = [] }
            return s.queued
        }
        // Never added to the multi handle: no thread but this one holds them now.
        for t in queued { t.complete(.failure(t.abortedFailure)) }
        curl_multi_wakeup(multi)
    }

    /// Ends every transfer, stops the thread and waits for it.
    func stop() {
        guard let multi else { return }
        let first = inbox.withLock { s in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard first else { return }
        curl_multi_wakeup(multi)
        exited.wait()
    }

    private func run() {
        guard let multi else { return }
        defer { exited.signal() }
        var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
        func end(_ t: CurlTransfer, _ result: Result<HTTPReply, TransportFailure>) {
            curl_multi_remove_handle(multi, t.easy)
            var n = 0
            if smsbatch_curl_getinfo_long(t.easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK { connects.add(n, ordering: .relaxed) }
            t.complete(result)
        }
        while true {
            let (queued, abort, stopping) = inbox.withLock { s in
                defer { s.queued = []; s.abortActive = false }
                return (s.queued, s.abortActive, s.stopping)
            }
            if abort || stopping {
                for t in active.values { end(t, .failure(t.abortedFailure)) }
                active.removeAll()
            }
            for t in queued {
                if stopping { t.complete(.failure(t.abortedFailure)); continue }
                guard curl_multi_add_handle(multi, t.easy) == CURLM_OK else {
                    t.complete(.failure(TransportFailure(kind: .notConnected, message: "cannot send to \(t.target.host) port \(t.target.port): libcurl refused the request")))
                    continue
                }
                active[t.easy] = t
            }
            if stopping { return }
            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let t = active.removeValue(forKey: easy)
                else { continue }
                // Read before remove_handle, which invalidates the message.
                let code = message.pointee.data.result
                end(t, t.outcome(code))
            }
            // Blocks until a socket is ready, curl's next timer, or curl_multi_wakeup.
            _ = curl_multi_poll(multi, nil, 0, 30_000, nil)
        }
    }
}
