import Foundation

/// A request's row numbers in `requests.rows`: UInt32 little-endian each.
enum RowListCodec {
    static func encode(_ rows: [Int]) -> Data {
        var bytes = [UInt8](repeating: 0, count: rows.count * 4)
        bytes.withUnsafeMutableBytes { out in
            for (i, r) in rows.enumerated() {
                precondition(r >= 0 && r <= Int(UInt32.max), "row number \(r) out of range")
                out.storeBytes(of: UInt32(r).littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        return Data(bytes)
    }

    /// nil when the length is not a multiple of 4.
    static func decode(_ data: Data) -> [Int]? {
        guard data.count % 4 == 0 else { return nil }
        return data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }
}

/// `requests.results`: a request's row outcomes in a compact binary form.
///
/// Layout: format byte (1), count (varint), then per outcome: row as the zigzag varint of its
/// difference from the previous row (requests hold rows in file order, so mostly 1 byte),
/// flags byte (bit 0 submitted, bit 1 has HTTP status), HTTP status (varint, if flagged),
/// attempts (varint), then message id, error code, error message as varint length + UTF-8.
/// Varints are LEB128. A 500-row answer of accepted rows is about 500 × 25 bytes.
enum OutcomeCodec {
    static let format: UInt8 = 1

    static func encode(_ outcomes: [RequestOutcome]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(8 + outcomes.count * 32)
        out.append(format)
        putVarint(&out, UInt64(outcomes.count))
        var previous = 0
        for o in outcomes {
            putVarint(&out, zigzag(Int64(o.row) - Int64(previous)))
            previous = o.row
            out.append((o.submitted ? 1 : 0) | (o.httpStatus != nil ? 2 : 0))
            if let h = o.httpStatus { putVarint(&out, zigzag(Int64(h))) }
            putVarint(&out, zigzag(Int64(o.attempts)))
            putString(&out, o.messageId)
            putString(&out, o.errorCode)
            putString(&out, o.errorMessage)
        }
        return Data(out)
    }

    /// nil when the bytes are not a well-formed encoding (truncated, unknown format).
    static func decode(_ data: Data) -> [RequestOutcome]? {
        data.withUnsafeBytes { raw -> [RequestOutcome]? in
            var r = Reader(bytes: raw.assumingMemoryBound(to: UInt8.self))
            guard r.byte() == format, let count = r.varint(), count <= UInt64(raw.count) else { return nil }
            var outcomes: [RequestOutcome] = []
            outcomes.reserveCapacity(Int(count))
            var previous: Int64 = 0
            for _ in 0..<count {
                guard let delta = r.varint(), let flags = r.byte() else { return nil }
                previous &+= unzigzag(delta)
                var http: Int?
                if flags & 2 != 0 {
                    guard let h = r.varint() else { return nil }
                    http = Int(unzigzag(h))
                }
                guard let attempts = r.varint(), let id = r.string(), let code = r.string(), let message = r.string()
                else { return nil }
                outcomes.append(RequestOutcome(
                    row: Int(previous), submitted: flags & 1 != 0, messageId: id, httpStatus: http,
                    errorCode: code, errorMessage: message, attempts: Int(unzigzag(attempts))))
            }
            return r.atEnd ? outcomes : nil
        }
    }

    // MARK: - Pieces

    @inline(__always)
    private static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inline(__always)
    private static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    @inline(__always)
    private static func putVarint(_ out: inout [UInt8], _ v: UInt64) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    private static func putString(_ out: inout [UInt8], _ s: String) {
        let utf8 = s.utf8
        putVarint(&out, UInt64(utf8.count))
        out.append(contentsOf: utf8)
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        var atEnd: Bool { at == bytes.count }

        mutating func byte() -> UInt8? {
            guard at < bytes.count else { return nil }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func varint() -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while shift < 64 {
                guard let b = byte() else { return nil }
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }

        mutating func string() -> String? {
            guard let n = varint(), n <= UInt64(bytes.count - at) else { return nil }
            let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[at..<at + Int(n)]), as: UTF8.self)
            at += Int(n)
            return s
        }
    }
}
