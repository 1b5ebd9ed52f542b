import SMSBatch
// The body of `POST sms/send/json`, read straight from the request bytes: only the fields the
// sandbox uses become strings, everything else is checked for syntax and skipped. A
// 500-node request is read without building a JSON tree.

/// A field value as it stood in the request.
enum FieldValue: Sendable, Equatable {
    case string(String)
    /// A JSON number, kept as its text (a `to` sent as `919876543210`).
    case number(String)
    /// `true`, `false`, an object or an array: never a valid field value.
    case other(String)
}

/// The message fields of one node, of `root`, or of `sms/send`'s parameters.
struct SendFields: Sendable {
    var to: FieldValue?
    var custom: FieldValue?
    var message: FieldValue?
    var sender: FieldValue?
    var service: FieldValue?
    var time: FieldValue?

    /// Sets the field called `name`; false when the sandbox does not use it.
    mutating func set(_ name: String, _ value: FieldValue?) -> Bool {
        switch name {
        case "to": to = value
        case "custom": custom = value
        case "message": message = value
        case "sender": sender = value
        case "service": service = value
        case "time": time = value
        default: return false
        }
        return true
    }

    /// Node values override root values; a JSON `null` or a missing field does not override.
    func over(_ root: SendFields) -> SendFields {
        SendFields(to: to ?? root.to, custom: custom ?? root.custom, message: message ?? root.message,
                   sender: sender ?? root.sender, service: service ?? root.service, time: time ?? root.time)
    }
}

/// `{"root": {…}, "nodes": [{…}, …]}`
struct SendPayload: Sendable {
    var root = SendFields()
    var nodes: [SendFields] = []

    enum Failure: Error, Equatable {
        /// Not JSON at all: 400.
        case syntax(String)
        /// JSON, but not the shape of a send request: 422.
        case shape(String)
    }

    /// Reads a `sms/send/json` body.
    /// - Throws: `Failure.syntax` for bytes that are not JSON, `Failure.shape` for JSON that is
    ///   not an object with a `nodes` array of objects. An empty `nodes` array is a normal
    ///   result (the caller answers 422).
    static func parse(_ body: [UInt8]) throws(Failure) -> SendPayload {
        try body.withUnsafeBufferPointer { (buf) throws(Failure) -> SendPayload in
            var r = JSONReader(b: buf)
            var payload = SendPayload()
            r.ws()
            guard r.peek() == 0x7B else {
                if r.atEnd { throw .syntax("request body is empty: expected a JSON object") }
                try r.skipValue(depth: 0)
                r.ws()
                guard r.atEnd else { throw .syntax(r.failure("unexpected data after the JSON value")) }
                throw .shape("request body must be a JSON object with root and nodes")
            }
            try r.object { (key, r) throws(Failure) in
                switch key {
                case "root":
                    if r.peek() == 0x7B {
                        try r.fields(into: &payload.root)
                    } else if !(try r.null()) {
                        try r.skipValue(depth: 1)  // malformed JSON is a syntax error first
                        throw .shape("root must be an object")
                    }
                case "nodes":
                    guard r.peek() == 0x5B else {
                        if try r.null() { return }
                        try r.skipValue(depth: 1)
                        throw .shape("nodes must be an array of objects")
                    }
                    payload.nodes.removeAll(keepingCapacity: true)
                    try r.array { (index, r) throws(Failure) in
                        guard r.peek() == 0x7B else {
                            try r.skipValue(depth: 2)
                            throw .shape("nodes.\(index) must be an object")
                        }
                        var node = SendFields()
                        try r.fields(into: &node)
                        payload.nodes.append(node)
                    }
                default:
                    try r.skipValue(depth: 1)
                }
            }
            r.ws()
            guard r.atEnd else { throw .syntax(r.failure("unexpected data after the JSON object")) }
            return payload
        }
    }

    /// Reads a flat JSON object of fields (`sms/send` with a JSON body).
    static func parseFields(_ body: [UInt8]) throws(Failure) -> SendFields {
        try body.withUnsafeBufferPointer { (buf) throws(Failure) -> SendFields in
            var r = JSONReader(b: buf)
            var fields = SendFields()
            r.ws()
            guard r.peek() == 0x7B else { throw .syntax(r.failure("expected a JSON object")) }
            try r.fields(into: &fields)
            r.ws()
            guard r.atEnd else { throw .syntax(r.failure("unexpected data after the JSON object")) }
            return fields
        }
    }
}

// MARK: - Reader

/// A forward-only JSON reader over bytes (RFC 8259, strict: no comments, no trailing commas).
private struct JSONReader {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0

    /// Nesting deeper than this is refused rather than recursed into.
    static let maxDepth = 64

    var atEnd: Bool { i >= b.count }

    func peek() -> UInt8? { i < b.count ? b[i] : nil }

    func failure(_ what: String) -> String { "malformed JSON at byte \(i): \(what)" }

    mutating func ws() {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ c: UInt8, _ what: String) throws(SendPayload.Failure) {
        ws()
        guard i < b.count, b[i] == c else { throw .syntax(failure("expected \(what)")) }
        i += 1
    }

    /// Reads `null` if it is next.
    mutating func null() throws(SendPayload.Failure) -> Bool {
        ws()
        guard peek() == 0x6E else { return false }
        try literal("null")
        return true
    }

    mutating func literal(_ word: StaticString) throws(SendPayload.Failure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw .syntax(failure("unexpected end")) }
        let ok = word.withUTF8Buffer { w in
            for k in 0..<n where b[i + k] != w[k] { return false }
            return true
        }
        guard ok else { throw .syntax(failure("unknown literal")) }
        i += n
    }

    /// An object: calls `member` with each key, the reader standing at the value, which
    /// `member` must consume.
    mutating func object(_ member: (String, inout JSONReader) throws(SendPayload.Failure) -> Void) throws(SendPayload.Failure) {
        try expect(0x7B, "'{'")
        ws()
        if peek() == 0x7D { i += 1; return }
        while true {
            ws()
            guard peek() == 0x22 else { throw .syntax(failure("expected a string key")) }
            let key = try string()
            try expect(0x3A, "':'")
            ws()
            try member(key, &self)
            ws()
            guard i < b.count else { throw .syntax(failure("unexpected end inside an object")) }
            if b[i] == 0x2C { i += 1; continue }
            if b[i] == 0x7D { i += 1; return }
            throw .syntax(failure("expected ',' or '}'"))
        }
    }

    /// An array: calls `element` with each index, the reader standing at the element.
    mutating func array(_ element: (Int, inout JSONReader) throws(SendPayload.Failure) -> Void) throws(SendPayload.Failure) {
        try expect(0x5B, "'['")
        ws()
        if peek() == 0x5D { i += 1; return }
        var index = 0
        while true {
            ws()
            try element(index, &self)
            index += 1
            ws()
            guard i < b.count else { throw .syntax(failure("unexpected end inside an array")) }
            if b[i] == 0x2C { i += 1; continue }
            if b[i] == 0x5D { i += 1; return }
            throw .syntax(failure("expected ',' or ']'"))
        }
    }

    /// An object of message fields; unknown keys are skipped.
    mutating func fields(into fields: inout SendFields) throws(SendPayload.Failure) {
        try object { (key, r) throws(SendPayload.Failure) in
            switch key {
            case "to", "custom", "message", "sender", "service", "time":
                _ = fields.set(key, try r.scalar())
            default:
                try r.skipValue(depth: 2)
            }
        }
    }

    /// A field value: string or number as text, `null` as nil, anything else `.other`.
    mutating func scalar() throws(SendPayload.Failure) -> FieldValue? {
        ws()
        guard let c = peek() else { throw .syntax(failure("unexpected end")) }
        switch c {
        case 0x22: return .string(try string())
        case 0x2D, 0x30...0x39: return .number(try number())
        case 0x6E: try literal("null"); return nil
        case 0x74: try literal("true"); return .other("a boolean")
        case 0x66: try literal("false"); return .other("a boolean")
        case 0x7B: try skipValue(depth: 2); return .other("an object")
        case 0x5B: try skipValue(depth: 2); return .other("an array")
        default: throw .syntax(failure("unexpected character"))
        }
    }

    mutating func skipValue(depth: Int) throws(SendPayload.Failure) {
        guard depth < JSONReader.maxDepth else { throw .syntax(failure("nested too deeply")) }
        ws()
        guard let c = peek() else { throw .syntax(failure("unexpected end")) }
        switch c {
        case 0x22: _ = try string()
        case 0x2D, 0x30...0x39: _ = try number()
        case 0x6E: try literal("null")
        case 0x74: try literal("true")
        case 0x66: try literal("false")
        case 0x7B: try object { (_, r) throws(SendPayload.Failure) in try r.skipValue(depth: depth + 1) }
        case 0x5B: try array { (_, r) throws(SendPayload.Failure) in try r.skipValue(depth: depth + 1) }
        default: throw .syntax(failure("unexpected character"))
        }
    }

    /// A number's text, checked against the JSON grammar.
    mutating func number() throws(SendPayload.Failure) -> String {
        let start = i
        if peek() == 0x2D { i += 1 }
        guard let first = peek(), first &- 0x30 < 10 else { throw .syntax(failure("bad number")) }
        i += 1
        if first != 0x30 { while let d = peek(), d &- 0x30 < 10 { i += 1 } }
        if peek() == 0x2E {
            i += 1
            guard let d = peek(), d &- 0x30 < 10 else { throw .syntax(failure("bad number")) }
            while let d = peek(), d &- 0x30 < 10 { i += 1 }
        }
        if peek() == 0x65 || peek() == 0x45 {
            i += 1
            if peek() == 0x2B || peek() == 0x2D { i += 1 }
            guard let d = peek(), d &- 0x30 < 10 else { throw .syntax(failure("bad number")) }
            while let d = peek(), d &- 0x30 < 10 { i += 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
    }

    /// A string, unescaped. Invalid UTF-8 inside becomes U+FFFD.
    mutating func string() throws(SendPayload.Failure) -> String {
        i += 1  // the opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == 0x22 {
                let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            if c == 0x5C { break }
            if c < 0x20 { throw .syntax(failure("control character in a string")) }
            i += 1
        }
        guard i < b.count else { throw .syntax(failure("unterminated string")) }
        var out = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
        while i < b.count {
            let c = b[i]
            if c == 0x22 { i += 1; return String(decoding: out, as: UTF8.self) }
            if c < 0x20 { throw .syntax(failure("control character in a string")) }
            guard c == 0x5C else { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate: pair it with the low one that should follow.
                    if i + 1 < b.count, b[i] == 0x5C, b[i + 1] == 0x75 {
                        let save = i
                        i += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            i = save
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(scalar) {
                    scalar = 0xFFFD
                }
                let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: String(u).utf8)
            default:
                throw .syntax(failure("bad escape"))
            }
        }
        throw .syntax(failure("unterminated string"))
    }

    private mutating func hex4() throws(SendPayload.Failure) -> UInt32 {
        guard i + 4 <= b.count else { throw .syntax(failure("bad \\u escape")) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw .syntax(failure("bad \\u escape"))
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }
}
