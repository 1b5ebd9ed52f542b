/// The encodings a recipient file may come in (`input.encoding`, README "Input").
public enum InputEncoding: String, Sendable, Equatable, CaseIterable {
    /// UTF-8 (BOM or not), or UTF-16 when a BOM says so.
    case auto
    case utf8 = "utf-8"
    /// With a BOM (LE or BE); without one, little-endian (Windows' "Unicode Text").
    case utf16 = "utf-16"
    case windows1252 = "windows-1252"
    case latin1 = "iso-8859-1"
}

/// Turns a stream of bytes in another encoding into UTF-8 as it is read, chunk by chunk (a
/// character split between two chunks is carried over). What cannot be decoded (a lone
/// UTF-16 surrogate, a byte Windows-1252 leaves undefined) becomes the byte 0xFF, never valid
/// UTF-8, so its row is `invalid_utf8` instead of being silently changed.
struct Transcoder {
    enum Source: Equatable { case utf16LE, utf16BE, windows1252, latin1 }
    let source: Source
    private var carry: [UInt8] = []
    /// A high surrogate waiting for its pair.
    private var highSurrogate: UInt32?

    init(_ source: Source) { self.source = source }

    /// The transcoder a file's start calls for, and the BOM bytes to skip; nil for UTF-8.
    static func detect(_ start: UnsafeRawBufferPointer, encoding: InputEncoding) -> (Transcoder, bom: Int)? {
        let le = start.count >= 2 && start[0] == 0xFF && start[1] == 0xFE
        let be = start.count >= 2 && start[0] == 0xFE && start[1] == 0xFF
        switch encoding {
        case .auto: return le ? (Transcoder(.utf16LE), 2) : be ? (Transcoder(.utf16BE), 2) : nil
        case .utf8: return nil
        case .utf16: return be ? (Transcoder(.utf16BE), 2) : (Transcoder(.utf16LE), le ? 2 : 0)
        case .windows1252: return (Transcoder(.windows1252), 0)
        case .latin1: return (Transcoder(.latin1), 0)
        }
    }

    /// Appends the UTF-8 of `chunk` to `out`.
    mutating func transcode(_ chunk: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        switch source {
        case .windows1252, .latin1:
            for b in chunk {
                if b < 0x80 { out.append(b); continue }
                var scalar = UInt32(b)
                if source == .windows1252 && b < 0xA0 { scalar = Transcoder.cp1252[Int(b - 0x80)] }
                Transcoder.appendUTF8(scalar, to: &out)
            }
        case .utf16LE, .utf16BE:
            var bytes = carry
            bytes.append(contentsOf: chunk)
            let usable = bytes.count & ~1
            var i = 0
            while i < usable {
                let unit = source == .utf16LE ? UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 : UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
                i += 2
                if let high = highSurrogate {
                    highSurrogate = nil
                    if (0xDC00...0xDFFF).contains(unit) {
                        Transcoder.appendUTF8(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00), to: &out)
                        continue
                    }
                    out.append(0xFF)  // a high surrogate alone
                }
                if (0xD800...0xDBFF).contains(unit) { highSurrogate = unit; continue }
                if (0xDC00...0xDFFF).contains(unit) { out.append(0xFF); continue }
                Transcoder.appendUTF8(unit, to: &out)
            }
            carry = Array(bytes[usable...])
        }
    }

    /// The end of the stream: half a character left over is not text.
    mutating func finish(into out: inout ByteBuffer) {
        if highSurrogate != nil || !carry.isEmpty { out.append(0xFF) }
        highSurrogate = nil
        carry = []
    }

    /// 0x80–0x9F in Windows-1252; 0xFFFF marks the five bytes it leaves undefined.
    private static let cp1252: [UInt32] = [
        0x20AC, 0xFFFF, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFF, 0x017D, 0xFFFF,
        0xFFFF, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFF, 0x017E, 0x0178,
    ]

    private static func appendUTF8(_ scalar: UInt32, to out: inout ByteBuffer) {
        switch scalar {
        case 0xFFFF: out.append(0xFF)
        case ..<0x80: out.append(UInt8(scalar))
        case ..<0x800:
            out.append(0xC0 | UInt8(scalar >> 6)); out.append(0x80 | UInt8(scalar & 0x3F))
        case ..<0x10000:
            out.append(0xE0 | UInt8(scalar >> 12)); out.append(0x80 | UInt8((scalar >> 6) & 0x3F)); out.append(0x80 | UInt8(scalar & 0x3F))
        default:
            out.append(0xF0 | UInt8(scalar >> 18)); out.append(0x80 | UInt8((scalar >> 12) & 0x3F))
            out.append(0x80 | UInt8((scalar >> 6) & 0x3F)); out.append(0x80 | UInt8(scalar & 0x3F))
        }
    }

    /// Whether bytes that are not UTF-8 read as Windows-1252 text (accented letters, curly
    /// quotes): the hint an `invalid_utf8` detail gives.
    static func looksLikeWindows1252(_ field: UnsafeBufferPointer<UInt8>) -> Bool {
        var high = 0
        for b in field where b >= 0x80 {
            if b < 0xA0 && cp1252[Int(b - 0x80)] == 0xFFFF { return false }
            high += 1
        }
        return high > 0
    }
}
