import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

// Every test starts its own sandbox on a free loopback port and talks to it over real HTTP:
// a tiny raw-socket client (full control over bytes, keep-alive and dropped connections),
// and URLSession where the client side's behaviour matters.

private let token = "tok-\(UUID().uuidString.prefix(8))"

private func sandbox(_ configure: (inout SandboxOptions) -> Void = { _ in }) throws -> SandboxServer {
    var o = SandboxOptions(token: token)
    configure(&o)
    let s = SandboxServer(options: o)
    try s.start()
    return s
}

// MARK: - A raw HTTP client

/// One response as read off the socket.
struct RawReply {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
}

/// A blocking HTTP/1.1 client on one socket, with a 5-second timeout on every read.
final class RawConnection {
    let fd: Int32
    private var buf: [UInt8] = []

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r != 0 { close(fd); throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ s: String) { send(Array(s.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        bytes.withUnsafeBytes { p in
            while off < p.count {
                let n = Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// Reads more bytes; false on EOF, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return false }
        buf += chunk[..<n]
        return true
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    func isClosedByPeer() -> Bool { buf.isEmpty && !fill() }

    /// The next response (1xx interim responses skipped), or nil when the connection ended first.
    func response() -> RawReply? {
        while true {
            var headEnd: Int?
            while headEnd == nil {
                if let r = findCRLFCRLF() { headEnd = r; break }
                guard fill() else { return nil }
            }
            let head = String(decoding: buf[..<headEnd!], as: UTF8.self)
            buf.removeFirst(headEnd! + 4)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
            var headers: [String: String] = [:]
            for l in lines {
                guard let c = l.firstIndex(of: ":") else { continue }
                headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
            if (100..<200).contains(status) { continue }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while buf.count < length { guard fill() else { return nil } }
            let body = Array(buf[..<length])
            buf.removeFirst(length)
            return RawReply(status: status, headers: headers, body: body)
        }
    }

    /// Reads whatever interim line arrives (for Expect: 100-continue).
    func readInterim() -> String? {
        while findCRLFCRLF() == nil { guard fill() else { return nil } }
        let end = findCRLFCRLF()!
        let s = String(decoding: buf[..<end], as: UTF8.self)
        buf.removeFirst(end + 4)
        return s
    }

    private func findCRLFCRLF() -> Int? {
        guard buf.count >= 4 else { return nil }
        for i in 0...(buf.count - 4) where buf[i] == 13 && buf[i + 1] == 10 && buf[i + 2] == 13 && buf[i + 3] == 10 { return i }
        return nil
    }
}

/// A request's bytes; `Content-Length` is added for a body.
func rawRequest(_ method: String, _ target: String, token: String? = token, headers: [String] = [], body: String? = nil) -> String {
    var s = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if let token { s += "Authorization: Bearer \(token)\r\n" }
    for h in headers { s += h + "\r\n" }
    if let body { s += "Content-Length: \(body.utf8.count)\r\n" }
    s += "\r\n" + (body ?? "")
    return s
}

/// One request on a fresh connection.
func call(_ s: SandboxServer, _ method: String, _ path: String, token: String? = token, headers: [String] = [], body: String? = nil) throws -> RawReply {
    let c = try RawConnection(port: s.port)
    c.send(rawRequest(method, "/api/v2/" + path, token: token, headers: headers, body: body))
    return try #require(c.response(), "no response to \(method) \(path)")
}

/// A send/json body: `nodes` as given, plus a root with sender MOBTXT, service T, message "Hello".
func sendBody(_ nodes: [[String: Any]], root: [String: Any] = ["sender": "MOBTXT", "service": "T", "message": "Hello"]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: ["root": root, "nodes": nodes])
    return String(decoding: data, as: UTF8.self)
}

private func indianNumber(_ i: Int) -> String { "+9198765" + String(format: "%05d", i) }

// MARK: - Tests

@Suite("Sandbox: the provider simulator of SPEC §8 over real HTTP")
struct SandboxTests {
    @Test("auth/me answers 200 with the token in a Bearer header, in the query, or in a form body")
    func auth() throws {
        let s = try sandbox()
        let byHeader = try call(s, "GET", "auth/me")
        #expect(byHeader.status == 200)
        #expect(byHeader.headers["content-type"] == "application/json")
        #expect(byHeader.json["status"] as? Int == 200)
        #expect(byHeader.data["name"] as? String == "Sandbox account")
        #expect(byHeader.data["balance"] as? Int == 1_000_000)
        #expect(try call(s, "GET", "auth/me?access_token=\(token)", token: nil).status == 200)
        let form = try call(s, "POST", "auth/me", token: nil, headers: ["Content-Type: application/x-www-form-urlencoded"],
                            body: "_method=GET&access_token=\(token)")
        #expect(form.status == 200)
    }

    @Test("a missing or wrong token gets 401 with {status, code, message}")
    func unauthorized() throws {
        let s = try sandbox()
        for reply in [try call(s, "GET", "auth/me", token: nil), try call(s, "GET", "auth/me", token: "wrong"),
                      try call(s, "GET", "auth/me?access_token=wrong", token: nil),
                      try call(s, "POST", "sms/send/json", token: nil, body: sendBody([["to": "919876543210"]]))] {
            #expect(reply.status == 401)
            #expect(reply.json["status"] as? Int == 401)
            #expect(reply.json["code"] as? String == "UNAUTHORIZED")
            #expect((reply.json["message"] as? String)?.isEmpty == false)
        }
        #expect(s.accepted.count == 0)
    }

    @Test("unknown paths get 404 JSON, a wrong verb 405 with Allow, and _method overrides the verb")
    func routing() throws {
        let s = try sandbox()
        for path in ["nope", "sms/sendx", "/../auth"] {
            let r = try call(s, "GET", path)
            #expect(r.status == 404)
            #expect(r.json["code"] as? String == "NOT_FOUND")
        }
        let outside = try RawConnection(port: s.port)
        outside.send(rawRequest("GET", "/index.html"))
        #expect(outside.response()?.status == 404)

        let wrongVerb = try call(s, "POST", "auth/me")
        #expect(wrongVerb.status == 405)
        #expect(wrongVerb.headers["allow"] == "GET")
        #expect(wrongVerb.json["code"] as? String == "METHOD_NOT_ALLOWED")
        #expect(try call(s, "GET", "sms/send/json").status == 405)

        #expect(try call(s, "POST", "auth/me?_method=GET").status == 200)
        let viaQuery = try call(s, "GET", "sms/send?_method=POST&to=%2B919876543210&message=hi&sender=MOBTXT&service=T&custom=q1")
        #expect(viaQuery.status == 200)
        #expect(s.accepted.customs == ["q1"])
    }

    @Test("send/json accepts every node: ids <group uuid>:<n>, normalised mobiles, units by segments, customid echoed")
    func sendJSON() throws {
        let s = try sandbox()
        let long = String(repeating: "a", count: 161)
        let body = sendBody([
            ["to": "+91 98765-43210", "custom": "job:2"],
            ["to": 919876543211, "custom": "job:3", "message": long],
            ["to": "919876543212", "message": "नमस्ते", "sender": "OTHERS"],
            ["to": "447700900123", "custom": "job:5", "service": "WAP", "message": long + long],
        ])
        let r = try call(s, "POST", "sms/send/json", headers: ["Content-Type: application/json"], body: body)
        #expect(r.status == 200)
        #expect(r.json["status"] as? String == "OK")
        let group = try #require(r.data["group_id"] as? String)
        #expect(UUID(uuidString: group) != nil)
        let messages = try #require(r.data["messages"] as? [[String: Any]])
        #expect(messages.count == 4)
        #expect(messages.map { $0["id"] as? String } == (1...4).map { "\(group):\($0)" })
        #expect(messages.map { $0["mobile"] as? String } == ["+919876543210", "+919876543211", "+919876543212", "+447700900123"])
        #expect(messages.map { $0["units"] as? Int } == [1, 2, 1, 1])
        #expect(messages.map { $0["customid"] as? String } == ["job:2", "job:3", "", "job:5"])
        #expect(messages.allSatisfy { $0["status"] as? String == "AWAITING-DLR" })
        #expect(s.accepted.count == 4)
        let balance = try call(s, "GET", "finance/balance")
        #expect(balance.data["balance"] as? Int == 1_000_000 - 5)
        #expect(balance.data["currency"] as? String == "INR")
    }

    @Test("one bad node rejects the request with 422 naming every bad node and field, and nothing is accepted")
    func validation() throws {
        let s = try sandbox()
        let body = sendBody([
            ["to": "919876543210", "custom": "v:0"],
            ["to": "919876543211", "message": "   "],
            ["to": "919876543212"],
            ["to": "0123", "custom": "v:3"],
            ["to": "919876543214", "service": "XYZ"],
        ])
        let r = try call(s, "POST", "sms/send/json", body: body)
        #expect(r.status == 422)
        #expect(r.json["status"] as? Int == 422)
        #expect(r.json["code"] as? String == "VALIDATION_FAILED")
        #expect((r.json["message"] as? String)?.hasPrefix("nodes.1.message: ") == true)
        let errors = try #require(r.json["errors"] as? [[String: Any]])
        let triples = errors.map { "\($0["node"] as? Int ?? -1).\($0["field"] as? String ?? "")=\($0["code"] as? String ?? "")" }
        #expect(triples == ["1.message=REQUIRED", "3.to=INVALID_MOBILE", "4.service=INVALID_SERVICE"])
        #expect(errors.allSatisfy { ($0["message"] as? String)?.isEmpty == false })

        let badNumber = try call(s, "POST", "sms/send/json", body: sendBody([["to": "919876543210"], ["to": "12-34"]]))
        #expect(badNumber.json["message"] as? String == "nodes.1.to: invalid mobile number")

        // Not JSON: 400; JSON without nodes: 422 without an errors list.
        let malformed = try call(s, "POST", "sms/send/json", body: "{\"root\":")
        #expect(malformed.status == 400)
        #expect(malformed.json["code"] as? String == "BAD_REQUEST")
        for empty in [#"{"root":{"sender":"X"},"nodes":[]}"#, #"{"root":{}}"#] {
            let r = try call(s, "POST", "sms/send/json", body: empty)
            #expect(r.status == 422)
            #expect(r.json["errors"] == nil)
        }
        #expect(s.accepted.count == 0)
        #expect(try call(s, "GET", "finance/balance").data["balance"] as? Int == 1_000_000)
    }

    @Test("sms/send takes one message from form or query parameters; a bad field is a 422 naming it")
    func sendSingle() throws {
        let s = try sandbox()
        let ok = try call(s, "POST", "sms/send", headers: ["Content-Type: application/x-www-form-urlencoded"],
                          body: "to=%2B919876543210&message=Hello+there%21&sender=MOBTXT&service=T&custom=s%3A1&time=2030-01-01+10%3A00%3A00")
        #expect(ok.status == 200)
        let messages = try #require(ok.data["messages"] as? [[String: Any]])
        #expect(messages.count == 1)
        #expect(messages[0]["customid"] as? String == "s:1")
        #expect((messages[0]["id"] as? String)?.hasSuffix(":1") == true)
        let status = try call(s, "GET", "sms/status?cid=s%3A1")
        let row = try #require((status.json["data"] as? [[String: Any]])?.first)
        #expect(row["scheduled_at"] as? String == "2030-01-01T04:30:00Z")  // local times are India's

        let bad = try call(s, "POST", "sms/send?to=123&message=hi&sender=MOBTXT&service=T")
        #expect(bad.status == 422)
        #expect(bad.json["message"] as? String == "to: invalid mobile number")
        let errors = try #require(bad.json["errors"] as? [[String: Any]])
        #expect(errors.count == 1)
        #expect(errors[0]["field"] as? String == "to")
        #expect(errors[0]["node"] == nil)
        #expect(s.accepted.count == 1)
    }

    @Test("sms/status finds messages by cid, id, mobile and group_id, 100 a page; unknown values and pages past the end give an empty page")
    func status() throws {
        let s = try sandbox()
        let nodes: [[String: Any]] = (0..<250).map { ["to": indianNumber($0 % 200), "custom": "c:\($0)"] }
        let sent = try call(s, "POST", "sms/send/json", body: sendBody(nodes))
        #expect(sent.status == 200)
        let group = try #require(sent.data["group_id"] as? String)

        for (page, count) in [(1, 100), (2, 100), (3, 50), (4, 0)] {
            let r = try call(s, "GET", "sms/status?group_id=\(group)&page=\(page)")
            #expect(r.status == 200)
            #expect((r.json["data"] as? [Any])?.count == count)
            let meta = try #require(r.json["meta"] as? [String: Any])
            #expect(meta["page"] as? Int == page)
            #expect(meta["per_page"] as? Int == 100)
            #expect(meta["total"] as? Int == 250)
            #expect(meta["last_page"] as? Int == 3)
        }
        // A page far past the end: (page - 1) * 100 overflowed and killed the server (make fuzz).
        let far = try call(s, "GET", "sms/status?group_id=\(group)&page=999999999999999999")
        #expect(far.status == 200)
        #expect((far.json["data"] as? [Any])?.count == 0)
        let third = try call(s, "GET", "sms/status?group_id=\(group)&page=3")
        #expect(((third.json["data"] as? [[String: Any]])?.first)?["customid"] as? String == "c:200")

        let byCid = try call(s, "GET", "sms/status?cid=c:7")
        let row = try #require((byCid.json["data"] as? [[String: Any]])?.first)
        #expect(row["id"] as? String == "\(group):8")
        #expect(row["mobile"] as? String == indianNumber(7))
        #expect(row["group_id"] as? String == group)
        #expect(row["status"] as? String == "AWAITING-DLR")
        #expect((row["submitted_at"] as? String)?.hasSuffix("Z") == true)

        let byID = try call(s, "GET", "sms/status?id=\(group):250")
        #expect(((byID.json["data"] as? [[String: Any]])?.first)?["customid"] as? String == "c:249")
        let byMobile = try call(s, "GET", "sms/status?mobile=%2B" + indianNumber(3).dropFirst())
        #expect((byMobile.json["data"] as? [[String: Any]])?.compactMap { $0["customid"] as? String } == ["c:3", "c:203"])

        for unknown in ["cid=nope", "id=\(group):251", "group_id=x", "mobile=12"] {
            let r = try call(s, "GET", "sms/status?" + unknown)
            #expect(r.status == 200)
            #expect((r.json["data"] as? [Any])?.isEmpty == true)
        }
        #expect(try call(s, "GET", "sms/status").status == 422)
    }

    @Test("sandbox/accepted counts nodes, repeats of a custom accepted before, and the distinct customs")
    func accepted() throws {
        let s = try sandbox()
        #expect(try call(s, "POST", "sms/send/json", body: sendBody([["to": "919876543210", "custom": "x"], ["to": "919876543211", "custom": "y"]])).status == 200)
        #expect(try call(s, "POST", "sms/send/json", body: sendBody([["to": "919876543210", "custom": "x"], ["to": "919876543212"]])).status == 200)
        let r = try call(s, "GET", "sandbox/accepted")
        #expect(r.status == 200)
        #expect(r.json["count"] as? Int == 4)
        #expect(r.json["repeats"] as? Int == 1)
        #expect(r.json["customs"] as? [String] == ["x", "y"])
        let inProcess = s.accepted
        #expect(inProcess.count == 4 && inProcess.repeats == 1 && inProcess.customs == ["x", "y"])
        #expect(try call(s, "GET", "sandbox/accepted", token: "wrong").status == 401)
    }

    @Test("beyond rateLimit requests a minute the token gets 429 with Retry-After ≥ 1")
    func rateLimit() throws {
        // The rate window on a clock that stands still: the sixth request is inside the
        // minute however slow the machine.
        let s = try sandbox { $0.rateLimit = 5; $0.clock = VirtualClock() }
        let c = try RawConnection(port: s.port)
        for _ in 0..<5 {
            c.send(rawRequest("GET", "/api/v2/auth/me"))
            #expect(c.response()?.status == 200)
        }
        c.send(rawRequest("POST", "/api/v2/sms/send/json", body: sendBody([["to": "919876543210"]])))
        let limited = try #require(c.response())
        #expect(limited.status == 429)
        #expect(limited.json["code"] as? String == "TOO_MANY_REQUESTS")
        let retry = try #require(Int(limited.headers["retry-after"] ?? ""))
        #expect(retry >= 1 && retry <= 60)
        #expect(s.accepted.count == 0)
        // The test hook is never limited.
        #expect(try call(s, "GET", "sandbox/accepted").status == 200)
    }

    @Test("failRate 1 answers every send with a 5xx and accepts nothing; look-ups are never faulted")
    func failRate() throws {
        let s = try sandbox { $0.failRate = 1 }
        for _ in 0..<6 {
            let r = try call(s, "POST", "sms/send/json", body: sendBody([["to": "919876543210", "custom": "f"]]))
            #expect([500, 502, 503].contains(r.status))
            #expect(r.json["status"] as? Int == r.status)
            #expect(r.json["code"] is String)
        }
        #expect(try call(s, "POST", "sms/send?to=919876543210&message=m&sender=S&service=T").status >= 500)
        #expect(try call(s, "GET", "auth/me").status == 200)
        #expect(try call(s, "GET", "sms/status?cid=f").status == 200)
        #expect(s.accepted.count == 0)
    }

    @Test("dropRate 1 accepts the nodes, then closes the connection without an answer")
    func dropRate() throws {
        let s = try sandbox { $0.dropRate = 1 }
        let c = try RawConnection(port: s.port)
        c.send(rawRequest("POST", "/api/v2/sms/send/json", body: sendBody([["to": "919876543210", "custom": "d:1"], ["to": "919876543211", "custom": "d:2"]])))
        #expect(c.response() == nil)
        let r = try call(s, "GET", "sandbox/accepted")
        #expect(r.json["count"] as? Int == 2)
        #expect(r.json["customs"] as? [String] == ["d:1", "d:2"])
        let found = try call(s, "GET", "sms/status?cid=d:2")
        #expect((found.json["data"] as? [Any])?.count == 1)
    }

    @Test("the same seed gives the same fault sequence; another seed another")
    func seededFaults() throws {
        func sequence(seed: UInt64) throws -> [Int] {
            let s = try sandbox { $0.failRate = 0.4; $0.dropRate = 0.3; $0.seed = seed }
            let c = try RawConnection(port: s.port)
            var out: [Int] = []
            var conn = c
            for k in 0..<24 {
                conn.send(rawRequest("POST", "/api/v2/sms/send/json", body: sendBody([["to": "919876543210", "custom": "s:\(k)"]])))
                if let r = conn.response() { out.append(r.status) } else {
                    out.append(0)  // dropped: reconnect
                    conn = try RawConnection(port: s.port)
                }
            }
            #expect(s.accepted.count == out.filter { $0 == 200 || $0 == 0 }.count)
            return out
        }
        let a = try sequence(seed: 42), b = try sequence(seed: 42), c = try sequence(seed: 43)
        #expect(a == b)
        #expect(a != c)
        #expect(a.contains(200) && a.contains(0) && a.contains { $0 >= 500 })
    }

    @Test("keep-alive: several requests on one connection, pipelined ones too; Connection: close is honoured")
    func keepAlive() throws {
        let s = try sandbox()
        let c = try RawConnection(port: s.port)
        for _ in 0..<3 {
            c.send(rawRequest("GET", "/api/v2/auth/me"))
            let r = c.response()
            #expect(r?.status == 200)
            #expect(r?.headers["connection"] == "keep-alive")
        }
        c.send(rawRequest("GET", "/api/v2/finance/balance") + rawRequest("POST", "/api/v2/sms/send/json", body: sendBody([["to": "919876543210"]])))
        #expect(c.response()?.status == 200)
        #expect(c.response()?.status == 200)
        c.send(rawRequest("GET", "/api/v2/auth/me", headers: ["Connection: close"]))
        let last = c.response()
        #expect(last?.status == 200)
        #expect(last?.headers["connection"] == "close")
        #expect(c.isClosedByPeer())
    }

    @Test("chunked bodies, Expect: 100-continue, HTTP/1.0 and absolute targets are understood")
    func framing() throws {
        let s = try sandbox()
        let body = Array(sendBody([["to": "919876543210", "custom": "ch"]]).utf8)
        var chunked = Array("POST /api/v2/sms/send/json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        for part in stride(from: 0, to: body.count, by: 7) {
            let piece = body[part..<min(body.count, part + 7)]
            chunked += Array((String(piece.count, radix: 16) + ";ext=1\r\n").utf8) + piece + Array("\r\n".utf8)
        }
        chunked += Array("0\r\n\r\n".utf8)
        let c = try RawConnection(port: s.port)
        c.send(chunked)
        #expect(c.response()?.status == 200)
        #expect(s.accepted.customs == ["ch"])

        let e = try RawConnection(port: s.port)
        let payload = sendBody([["to": "919876543210", "custom": "ex"]])
        e.send("POST /api/v2/sms/send/json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nExpect: 100-continue\r\nContent-Length: \(payload.utf8.count)\r\n\r\n")
        #expect(e.readInterim()?.hasPrefix("HTTP/1.1 100") == true)
        e.send(payload)
        #expect(e.response()?.status == 200)

        let old = try RawConnection(port: s.port)
        old.send("GET http://127.0.0.1/api/v2/auth/me?access_token=\(token) HTTP/1.0\r\n\r\n")
        let r = old.response()
        #expect(r?.status == 200)
        #expect(r?.headers["connection"] == "close")
    }

    @Test("garbage gets 400, an oversized body 413, a vanished client nothing; the server keeps serving")
    func garbage() throws {
        let s = try sandbox()
        let g = try RawConnection(port: s.port)
        g.send([0x00, 0x01, 0xFF] + Array("garbage\r\n\r\n".utf8))
        let r = g.response()
        #expect(r?.status == 400)
        #expect(r?.json["code"] as? String == "BAD_REQUEST")
        for bad in ["GET /api/v2/auth/me HTTP/1.1\r\nNo colon here\r\n\r\n",
                    "POST /api/v2/sms/send HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    "POST /api/v2/sms/send HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    "GET /a b c HTTP/1.1\r\n\r\n"] {
            let c = try RawConnection(port: s.port)
            c.send(bad)
            #expect(c.response()?.status == 400, "\(bad)")
        }
        let big = try RawConnection(port: s.port)
        big.send("POST /api/v2/sms/send/json HTTP/1.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: 40000000\r\n\r\n{")
        #expect(big.response()?.status == 413)
        // Clients that vanish mid-head and mid-body.
        for partial in ["GET /api/v2/auth", "POST /api/v2/sms/send/json HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"root\""] {
            let v = try RawConnection(port: s.port)
            v.send(partial)
        }
        let huge = try RawConnection(port: s.port)
        huge.send("GET /" + String(repeating: "a", count: 70_000) + " HTTP/1.1\r\n\r\n")
        #expect(huge.response()?.status == 431)
        #expect(try call(s, "GET", "auth/me").status == 200)
    }

    @Test("latency delays every answer")
    func latency() throws {
        let s = try sandbox { $0.latencyMs = 150 }
        let t0 = Date()
        #expect(try call(s, "GET", "auth/me").status == 200)
        #expect(Date().timeIntervalSince(t0) >= 0.14)
    }

    @Test("URLSession: a 500-node send/json and auth/me work with Linux's URLSession")
    func urlSession() async throws {
        let s = try sandbox()
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 10
        let session = URLSession(configuration: config)
        defer { session.finishTasksAndInvalidate() }
        func fetch(_ request: URLRequest) async throws -> (Int, [String: Any]) {
            try await withCheckedThrowingContinuation { cont in
                session.dataTask(with: request) { data, response, error in
                    if let error { cont.resume(throwing: error); return }
                    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                    let json = data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
                    cont.resume(returning: (status, json))
                }.resume()
            }
        }
        var me = URLRequest(url: URL(string: s.endpoint + "auth/me")!)
        me.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        #expect(try await fetch(me).0 == 200)

        var send = URLRequest(url: URL(string: s.endpoint + "sms/send/json")!)
        send.httpMethod = "POST"
        send.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        send.setValue("application/json", forHTTPHeaderField: "Content-Type")
        send.httpBody = Data(sendBody((0..<500).map { ["to": indianNumber($0), "custom": "u:\($0)"] }).utf8)
        for _ in 0..<2 {
            let (status, json) = try await fetch(send)
            #expect(status == 200)
            #expect(((json["data"] as? [String: Any])?["messages"] as? [Any])?.count == 500)
        }
        #expect(s.accepted.count == 1000)
        #expect(s.accepted.repeats == 500)
    }

    @Test("smsbatch sandbox --port 0 prints its endpoint, serves, and exits 0 on SIGTERM; bad flags exit 64")
    func command() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: smsbatchBinary)
        p.arguments = ["sandbox", "--port", "0", "--token", "t1"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }

        // The first line, within 10 s.
        let fd = out.fileHandleForReading.fileDescriptor
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(10)
        while !line.contains(0x0A) && Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 200) >= 0 else { break }
            if pfd.revents == 0 { continue }
            var b = [UInt8](repeating: 0, count: 256)
            let n = b.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            line += b[..<n]
        }
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasPrefix("sandbox listening on http://127.0.0.1:"))
        #expect(!text.contains("t1"))
        let port = try #require(UInt16(text.split(separator: ":").last?.split(separator: "/").first ?? ""))

        let c = try RawConnection(port: port)
        c.send(rawRequest("GET", "/api/v2/auth/me", token: "t1"))
        #expect(c.response()?.status == 200)

        p.terminate()  // SIGTERM
        let stopBy = Date().addingTimeInterval(5)
        while p.isRunning && Date() < stopBy { usleep(20_000) }
        #expect(!p.isRunning)
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 0)

        let dir = TempDir()
        for bad in [["--fail-rate", "1.5"], ["--drop-rate", "-0.1"], ["--port", "70000"], ["--rate-limit", "-1"]] {
            #expect(try smsbatch(["sandbox"] + bad, cwd: dir.path).status == 64, "\(bad)")
        }
    }
}
