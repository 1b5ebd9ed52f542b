import Foundation
import SMSBatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A small HTTP/1.1 server on POSIX sockets for the provider sandbox: loopback only, a thread
// per connection, keep-alive, Content-Length and chunked request bodies, JSON answers. It
// trusts nothing it reads: garbage gets a 400, a vanished client ends its thread quietly.

/// One parsed HTTP request.
public struct HTTPRequest: Sendable {
    /// The verb as sent (`GET`, `POST` …).
    public var method: String
    /// The request target as sent, e.g. `/api/v2/sms/status?id=x`.
    public var target: String
    /// The percent-decoded path of the target, without the query.
    public var path: String
    /// The query string's parameters, percent-decoded (`+` is a space); the first of a repeated name wins.
    public var query: [String: String]
    /// Header values by lower-cased name; repeated headers are joined with ", ".
    public var headers: [String: String]
    /// The request body (chunked bodies already decoded).
    public var body: [UInt8]

    public init(method: String, target: String, path: String, query: [String: String] = [:],
                headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The value of header `name` (any case).
    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// True when the body is `application/x-www-form-urlencoded`.
    public var hasFormBody: Bool {
        guard let ct = headers["content-type"] else { return false }
        return ct.lowercased().hasPrefix("application/x-www-form-urlencoded")
    }

    /// Query parameters plus, for a form body, the body's parameters (the query wins on a clash).
    public var parameters: [String: String] {
        guard hasFormBody, !body.isEmpty else { return query }
        var p = HTTPServer.parseForm(body[...])
        for (k, v) in query { p[k] = v }
        return p
    }
}

/// What the server does with a request.
public enum HTTPAction: Sendable {
    /// Answer with this status, extra headers and body (`Content-Type: application/json` and
    /// `Content-Length` are always added).
    case respond(status: Int, headers: [(String, String)], body: [UInt8])
    /// Close the connection without writing anything.
    case drop
}

/// Why the server could not start.
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
    /// The socket call that failed (`socket`, `bind`, `listen` …).
    public var operation: String
    /// The `errno` it set.
    public var code: Int32
    /// The address it tried to listen on.
    public var host = "127.0.0.1"

    public var description: String {
        "cannot listen on \(host): \(operation): \(String(cString: strerror(code)))"
    }
}

/// An HTTP/1.1 server bound to 127.0.0.1 (or another IPv4 address given, never 0.0.0.0) that
/// hands every request to one handler closure.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: the mutable socket bookkeeping below is only touched under `lock`.

    public typealias Handler = @Sendable (HTTPRequest) -> HTTPAction

    /// Largest request body accepted; bigger ones get 413.
    public let maxBodyBytes: Int
    /// Largest request line plus headers; bigger ones get 431.
    public let maxHeaderBytes = 64 * 1024
    /// Connections open at once; more are answered 503 and closed.
    public let maxConnections: Int

    private let requestedPort: UInt16
    private let host: String
    private let handler: Handler
    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private var boundPort: UInt16 = 0
    private var stopping = false
    private var connections = Set<Int32>()
    private let acceptDone = DispatchSemaphore(value: 0)

    /// A server for `port` (0 = any free port) that answers with `handler`.
    public init(host: String = "127.0.0.1", port: UInt16 = 0, maxBodyBytes: Int = 32 << 20, maxConnections: Int = 256,
                handler: @escaping Handler) {
        self.requestedPort = port
        self.host = host
        self.maxBodyBytes = maxBodyBytes
        self.maxConnections = maxConnections
        self.handler = handler
    }

    deinit { if listenFD >= 0 { close(listenFD) } }

    /// The bound port (0 before `start`).
    public var port: UInt16 { lock.withLock { boundPort } }

    /// Binds `host`, starts accepting on a thread of its own, and returns the bound port.
    /// - Throws: `HTTPServerError` when the socket cannot be created, bound (port in use) or
    ///   listened on, or when the server was already started.
    public func start() throws(HTTPServerError) -> UInt16 {
        lock.lock()
        defer { lock.unlock() }
        guard listenFD < 0, !stopping else { throw HTTPServerError(operation: "already started", code: EINVAL, host: host) }
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1, address.s_addr != 0 else {
            throw HTTPServerError(operation: "not an IPv4 address of this machine", code: EINVAL, host: host)
        }
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HTTPServerError(operation: "socket", code: errno, host: host) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = requestedPort.bigEndian
        addr.sin_addr = address  // never 0.0.0.0: the sandbox is not for other machines
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { let e = errno; close(fd); throw HTTPServerError(operation: "bind port \(requestedPort)", code: e, host: host) }
        guard listen(fd, 128) == 0 else { let e = errno; close(fd); throw HTTPServerError(operation: "listen", code: e, host: host) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        var got = sockaddr_in()
        _ = withUnsafeMutablePointer(to: &got) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listenFD = fd
        boundPort = UInt16(bigEndian: got.sin_port)
        let t = Thread { [self] in acceptLoop(fd) }
        t.name = "sandbox-accept"
        t.start()
        return boundPort
    }

    /// Stops accepting, ends every open connection, and waits (up to a second) for the
    /// accept thread to finish. Safe to call more than once.
    public func stop() {
        let started: Bool = lock.withLock {
            if stopping { return false }
            stopping = true
            for c in connections { shutdown(c, Int32(SHUT_RDWR)) }
            if listenFD >= 0 { shutdown(listenFD, Int32(SHUT_RDWR)); return true }
            return false
        }
        if started { _ = acceptDone.wait(timeout: .now() + 1) }
    }

    // MARK: - Accepting

    private func acceptLoop(_ fd: Int32) {
        defer {
            lock.withLock {
                close(fd)
                listenFD = -1
            }
            acceptDone.signal()
        }
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                let e = errno
                if lock.withLock({ stopping }) { return }
                if e == EINTR || e == ECONNABORTED || e == EAGAIN { continue }
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM { usleep(10_000); continue }
                return  // the listening socket is gone
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)  // accept4 does not import: close-on-exec by hand
            var yes: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            let admitted: Bool = lock.withLock {
                guard !stopping, connections.count < maxConnections else { return false }
                connections.insert(c)
                return true
            }
            guard admitted else {
                Connection(fd: c).write(HTTPServer.response(status: 503, headers: [], body: HTTPServer.errorBody(503, "SERVICE_UNAVAILABLE", "too many connections"), keepAlive: false))
                close(c)
                continue
            }
            let t = Thread { [self] in serve(c) }
            t.name = "sandbox-conn"
            t.stackSize = 1 << 20
            t.start()
        }
    }

    // MARK: - One connection

    private func serve(_ fd: Int32) {
        var conn = Connection(fd: fd)
        defer {
            lock.withLock { _ = connections.remove(fd) }
            close(fd)
        }
        while true {
            switch readRequest(&conn) {
            case .closed:
                return
            case .reject(let status, let code, let message):
                conn.write(HTTPServer.response(status: status, headers: [], body: HTTPServer.errorBody(status, code, message), keepAlive: false))
                conn.lingeringClose()
                return
            case .request(let request, let keepAlive):
                switch handler(request) {
                case .drop:
                    return
                case .respond(let status, let headers, let body):
                    // A HEAD answer has the GET answer's headers and no body.
                    let bytes = HTTPServer.response(status: status, headers: headers, body: body, keepAlive: keepAlive,
                                                    headOnly: request.method == "HEAD")
                    guard conn.write(bytes) else { return }
                    if !keepAlive { conn.lingeringClose(); return }
                }
            }
        }
    }

    private enum ReadResult {
        case request(HTTPRequest, keepAlive: Bool)
        /// Answer this error, then close.
        case reject(Int, String, String)
        /// The client went away (or never sent a whole request).
        case closed
    }

    private func readRequest(_ conn: inout Connection) -> ReadResult {
        // The head: everything up to the first empty line.
        var headEnd = -1
        var scanned = 0
        while true {
            // Stray empty lines before a request line are allowed (RFC 9112 §2.2).
            if scanned == 0 { conn.skipLeadingNewlines() }
            if let e = conn.findHeadEnd(from: scanned) { headEnd = e; break }
            scanned = max(0, conn.buffered - 3)
            if conn.buffered > maxHeaderBytes { return .reject(431, "HEADERS_TOO_LARGE", "request line and headers exceed \(maxHeaderBytes) bytes") }
            guard conn.fill() else { return .closed }
        }
        if headEnd > maxHeaderBytes { return .reject(431, "HEADERS_TOO_LARGE", "request line and headers exceed \(maxHeaderBytes) bytes") }
        let head = conn.take(headEnd)
        var lines = head.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 0x0D ? line.dropLast() : line
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .reject(400, "BAD_REQUEST", "empty request") }
        let parts = requestLine.split(separator: 0x20)
        guard parts.count == 3, parts[0].allSatisfy(HTTPServer.isTokenByte),
              let version = String(validating: parts[2], as: UTF8.self), version.hasPrefix("HTTP/1.")
        else { return .reject(400, "BAD_REQUEST", "malformed request line") }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .reject(400, "BAD_REQUEST", "malformed request target") }

        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex,
                  line[line.startIndex..<colon].allSatisfy(HTTPServer.isTokenByte)
            else { return .reject(400, "BAD_REQUEST", "malformed header line") }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: HTTPServer.trimmed(line[(colon + 1)...]), as: UTF8.self)
            if let old = headers[name] { headers[name] = old + ", " + value } else { headers[name] = value }
        }

        let http10 = version == "HTTP/1.0"
        let connection = headers["connection"]?.lowercased() ?? ""
        let keepAlive = http10 ? connection.contains("keep-alive") : !connection.contains("close")
        let expectContinue = !http10 && headers["expect"]?.lowercased() == "100-continue"

        // The body.
        var body: [UInt8] = []
        if let te = headers["transfer-encoding"]?.lowercased(), !te.isEmpty {
            guard te.hasSuffix("chunked") else { return .reject(400, "BAD_REQUEST", "unsupported transfer-encoding '\(te)'") }
            if expectContinue && conn.buffered == 0 { conn.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
            if let failure = readChunked(&conn, into: &body) { return failure }
        } else if let cl = headers["content-length"] {
            // Repeated identical values ("10, 10") are allowed; differing ones are not.
            let values = Set(cl.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            guard values.count == 1, let v = values.first, !v.isEmpty, v.utf8.allSatisfy({ $0 &- 0x30 < 10 }), let n = Int(v)
            else { return .reject(400, "BAD_REQUEST", "invalid content-length") }
            guard n <= maxBodyBytes else { return .reject(413, "PAYLOAD_TOO_LARGE", "request body of \(n) bytes exceeds \(maxBodyBytes)") }
            if n > 0 {
                if expectContinue && conn.buffered < n { conn.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
                guard let b = conn.read(exactly: n) else { return .closed }
                body = b
            }
        }

        let (path, query) = HTTPServer.splitTarget(target)
        let request = HTTPRequest(method: method, target: target, path: path, query: query, headers: headers, body: body)
        return .request(request, keepAlive: keepAlive)
    }

    /// Reads a chunked body into `body`; nil when it arrived whole, else what to do instead.
    private func readChunked(_ conn: inout Connection, into body: inout [UInt8]) -> ReadResult? {
        while true {
            guard let line = conn.readLine(max: 4096) else { return .closed }
            let sizeText = HTTPServer.trimmed(line.prefix { $0 != 0x3B })  // drop chunk extensions
            guard !sizeText.isEmpty, sizeText.count <= 15,
                  let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16), size >= 0
            else { return .reject(400, "BAD_REQUEST", "malformed chunk size") }
            if size == 0 {
                // Trailers, up to the empty line.
                while true {
                    guard let t = conn.readLine(max: 8192) else { return .closed }
                    if t.isEmpty { return nil }
                }
            }
            guard body.count + size <= maxBodyBytes else {
                return .reject(413, "PAYLOAD_TOO_LARGE", "request body exceeds \(maxBodyBytes) bytes")
            }
            guard let chunk = conn.read(exactly: size) else { return .closed }
            body += chunk
            guard let end = conn.readLine(max: 2), end.isEmpty else {
                return .reject(400, "BAD_REQUEST", "malformed chunk")
            }
        }
    }

    // MARK: - Responses

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Payload Too Large"
        case 422: "Unprocessable Entity"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }

    /// The whole response, head and body, as one buffer (one `send`).
    static func response(status: Int, headers: [(String, String)], body: [UInt8], keepAlive: Bool, headOnly: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 200)
        out.append(contentsOf: "HTTP/1.1 \(status) \(reason(status))\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: \(keepAlive ? "keep-alive" : "close")\r\nServer: smsbatch-sandbox\r\n".utf8)
        for (name, value) in headers {
            // Header injection is impossible: CR and LF never reach the wire.
            out.append(contentsOf: name.utf8.filter { $0 != 0x0D && $0 != 0x0A })
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: value.utf8.filter { $0 != 0x0D && $0 != 0x0A })
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        if !headOnly { out.append(contentsOf: body) }
        return out
    }

    /// `{"status":N,"code":"…","message":"…"}`
    static func errorBody(_ status: Int, _ code: String, _ message: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + message.utf8.count)
        out.append(contentsOf: "{\"status\":\(status),\"code\":".utf8)
        out.appendJSONString(code)
        out.append(contentsOf: ",\"message\":".utf8)
        out.appendJSONString(message)
        out.append(0x7D)
        return out
    }

    // MARK: - Parsing helpers

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        return s
    }

    /// Splits a request target into its decoded path and query parameters. An absolute form
    /// (`http://host/path`) loses its scheme and authority.
    static func splitTarget(_ target: String) -> (String, [String: String]) {
        var bytes = Array(target.utf8)[...]
        for scheme in ["http://", "https://"] where bytes.starts(with: scheme.utf8) {
            let authorityAndPath = bytes.dropFirst(scheme.utf8.count)
            bytes = authorityAndPath.firstIndex(of: 0x2F).map { authorityAndPath[$0...] } ?? ArraySlice("/".utf8)
        }
        if let hash = bytes.firstIndex(of: 0x23) { bytes = bytes[..<hash] }
        guard let q = bytes.firstIndex(of: 0x3F) else { return (percentDecode(bytes, plusAsSpace: false), [:]) }
        return (percentDecode(bytes[..<q], plusAsSpace: false), parseForm(bytes[(q + 1)...]))
    }

    /// `a=1&b=x+y` into a dictionary (percent-decoded, `+` as space, first of a repeated name wins).
    static func parseForm(_ bytes: ArraySlice<UInt8>) -> [String: String] {
        var out: [String: String] = [:]
        for pair in bytes.split(separator: 0x26) {
            let eq = pair.firstIndex(of: 0x3D)
            let name = percentDecode(eq.map { pair[..<$0] } ?? pair, plusAsSpace: true)
            let value = eq.map { percentDecode(pair[($0 + 1)...], plusAsSpace: true) } ?? ""
            if !name.isEmpty, out[name] == nil { out[name] = value }
        }
        return out
    }

    /// Percent-decodes bytes; a `%` not followed by two hex digits stays as it is. Bytes that
    /// are not UTF-8 after decoding become U+FFFD.
    static func percentDecode(_ bytes: ArraySlice<UInt8>, plusAsSpace: Bool) -> String {
        if !bytes.contains(where: { $0 == 0x25 || (plusAsSpace && $0 == 0x2B) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == 0x25, i + 2 < bytes.endIndex, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(plusAsSpace && b == 0x2B ? 0x20 : b)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

// MARK: - Socket I/O

/// A connected socket with a read buffer, used by one thread.
private struct Connection {
    let fd: Int32
    private var buf = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(fd: Int32) { self.fd = fd }

    var buffered: Int { end - start }

    /// Reads more bytes into the buffer; false when the peer closed or the socket failed.
    mutating func fill() -> Bool {
        if start > 0 && start == end { start = 0; end = 0 }
        if end == buf.count {
            if start > 0 {
                buf.withUnsafeMutableBufferPointer { p in
                    _ = memmove(p.baseAddress!, p.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            } else {
                buf.append(contentsOf: repeatElement(0, count: buf.count))
            }
        }
        while true {
            let n = buf.withUnsafeMutableBytes { p in recv(fd, p.baseAddress! + end, p.count - end, 0) }
            if n > 0 { end += n; return true }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }

    /// The offset (from the buffered start) just past the first empty line, if buffered.
    func findHeadEnd(from: Int) -> Int? {
        var i = start + from
        while i < end {
            if buf[i] == 0x0A {
                if i + 1 < end && buf[i + 1] == 0x0A { return i + 2 - start }
                if i + 2 < end && buf[i + 1] == 0x0D && buf[i + 2] == 0x0A { return i + 3 - start }
            }
            i += 1
        }
        return nil
    }

    mutating func skipLeadingNewlines() {
        while start < end && (buf[start] == 0x0D || buf[start] == 0x0A) { start += 1 }
    }

    /// Removes and returns the first `n` buffered bytes.
    mutating func take(_ n: Int) -> [UInt8] {
        defer { start += n }
        return Array(buf[start..<(start + n)])
    }

    /// Exactly `n` bytes (buffered first, then straight from the socket), or nil if the peer
    /// went away first.
    mutating func read(exactly n: Int) -> [UInt8]? {
        let have = min(n, buffered)
        var out = [UInt8](repeating: 0, count: n)
        buf.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if have > 0 { dst.baseAddress!.update(from: src.baseAddress! + start, count: have) }
            }
        }
        start += have
        var got = have
        while got < n {
            let r = out.withUnsafeMutableBytes { p in recv(fd, p.baseAddress! + got, n - got, 0) }
            if r > 0 { got += r; continue }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
        return out
    }

    /// One line without its CR LF (or bare LF), at most `max` bytes long; nil when the peer
    /// went away or the line is longer.
    mutating func readLine(max: Int) -> ArraySlice<UInt8>? {
        var scanned = 0
        while true {
            var i = start + scanned
            while i < end {
                if buf[i] == 0x0A {
                    var line = buf[start..<i]
                    if line.last == 0x0D { line = line.dropLast() }
                    let copy = Array(line)[...]
                    start = i + 1
                    return copy
                }
                i += 1
            }
            scanned = buffered
            if scanned > max + 1 { return nil }
            guard fill() else { return nil }
        }
    }

    /// Writes all of `bytes`; false when the peer is gone. Never raises SIGPIPE.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        return bytes.withUnsafeBytes { p in
            while sent < p.count {
                #if os(Linux)
                let n = send(fd, p.baseAddress! + sent, p.count - sent, Int32(MSG_NOSIGNAL))
                #else
                let n = send(fd, p.baseAddress! + sent, p.count - sent, 0)
                #endif
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                return false
            }
            return true
        }
    }

    /// Half-closes and reads what the client still sends (for up to a second, at most 64 MB),
    /// so an error answer is not lost to a reset while the client is still writing its body.
    func lingeringClose() {
        shutdown(fd, Int32(SHUT_WR))
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sink = [UInt8](repeating: 0, count: 64 * 1024)
        var total = 0
        let deadline = DispatchTime.now() + 2
        while total < 64 << 20 && DispatchTime.now() < deadline {
            let n = sink.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { total += n; continue }
            if n < 0 && errno == EINTR { continue }
            return
        }
    }
}

// MARK: - JSON bytes

extension Array where Element == UInt8 {
    /// Appends `s` as a JSON string literal, quoted and escaped.
    mutating func appendJSONString(_ s: String) {
        append(0x22)
        let needsEscape = s.utf8.contains { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }
        if !needsEscape {
            append(contentsOf: s.utf8)
        } else {
            for b in s.utf8 {
                switch b {
                case 0x22: append(0x5C); append(0x22)
                case 0x5C: append(0x5C); append(0x5C)
                case 0x0A: append(0x5C); append(0x6E)
                case 0x0D: append(0x5C); append(0x72)
                case 0x09: append(0x5C); append(0x74)
                case 0..<0x20:
                    let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
                    append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]])
                default: append(b)
                }
            }
        }
        append(0x22)
    }

    /// Appends a decimal integer.
    mutating func appendDecimal(_ v: Int) {
        if v < 0 {
            append(0x2D)
            if v == Int.min { append(contentsOf: String(v).utf8.dropFirst()); return }
            appendDecimal(-v)
            return
        }
        if v < 10 { append(UInt8(truncatingIfNeeded: 0x30 + v)); return }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = 0
        var x = v
        Swift.withUnsafeMutableBytes(of: &digits) { d in
            while x > 0 {
                d[23 - n] = UInt8(truncatingIfNeeded: 0x30 + x % 10)
                x /= 10
                n += 1
            }
            append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - n)...]))
        }
    }

    mutating func appendASCII(_ s: StaticString) {
        s.withUTF8Buffer { append(contentsOf: $0) }
    }
}
