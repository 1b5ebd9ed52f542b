/// How an SMS is encoded on the air (the `encoding` column of the outputs).
public enum SMSEncoding: UInt8, Sendable {
    case gsm7, ucs2

    public var name: String { self == .gsm7 ? "gsm7" : "ucs2" }
}

/// A message's size as the network counts it (SPEC §5 "SMS segments").
package struct SegmentCount: Equatable {
    package var encoding: SMSEncoding
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    package var units: Int
    /// SMS parts: one part holds 160 septets / 70 units, a part of a longer message 153 / 67.
    package var segments: Int
}

/// Counts SMS parts of a UTF-8 message.
package enum SegmentCounter {
    /// The encoding, units and parts of `msg`, which must be valid UTF-8.
    ///
    /// GSM-7 when every character is in the GSM 03.38 basic or extension set, else UCS-2.
    /// Both counts are kept in one pass, so a message that turns out not to be GSM-7 is not
    /// read twice.
    package static func count(_ msg: UnsafeBufferPointer<UInt8>) -> SegmentCount {
        var septets = 0
        var utf16 = 0
        var gsm = true
        var i = 0
        let n = msg.count
        while i < n {
            let c = msg[i]
            if c < 0x80 {
                let s = asciiSeptets(c)
                if s == 0 { gsm = false }
                septets &+= s
                utf16 &+= 1
                i += 1
                continue
            }
            // Valid UTF-8 is promised: decode without re-checking.
            let scalar: UInt32
            if c < 0xE0 {
                scalar = UInt32(c & 0x1F) << 6 | UInt32(msg[i + 1] & 0x3F)
                i += 2
            } else if c < 0xF0 {
                scalar = UInt32(c & 0x0F) << 12 | UInt32(msg[i + 1] & 0x3F) << 6 | UInt32(msg[i + 2] & 0x3F)
                i += 3
            } else {
                i += 4
                utf16 &+= 2   // astral: a surrogate pair, never GSM
                gsm = false
                continue
            }
            utf16 &+= 1
            if gsm {
                let s = nonASCIISeptets(scalar)
                if s == 0 { gsm = false }
                septets &+= s
            }
        }
        return gsm
            ? SegmentCount(encoding: .gsm7, units: septets, segments: parts(septets, single: 160, multi: 153))
            : SegmentCount(encoding: .ucs2, units: utf16, segments: parts(utf16, single: 70, multi: 67))
    }

    /// Unicode scalars in valid UTF-8 (the 4096 limit of non-SMS products): every byte that
    /// is not a continuation byte starts one. Counted 8 bytes at a time.
    static func scalarCount(_ msg: UnsafeBufferPointer<UInt8>) -> Int {
        let n = msg.count
        var continuations = 0
        var i = 0
        while i + 8 <= n {
            let w = load8(msg, i)
            // Bit 7 of each byte set where the byte is 10xxxxxx (bit 7 set, bit 6 clear).
            continuations &+= (w & ~(w << 1) & highBits).nonzeroBitCount
            i += 8
        }
        while i < n {
            if msg[i] & 0xC0 == 0x80 { continuations &+= 1 }
            i += 1
        }
        return n - continuations
    }

    // MARK: - GSM 03.38

    @inline(__always)
    private static func parts(_ units: Int, single: Int, multi: Int) -> Int {
        units <= single ? 1 : (units + multi - 1) / multi
    }

    /// The 128-entry ASCII table, as bitmaps: 1 for the basic set, 2 for the extension set,
    /// 0 for ASCII that GSM 03.38 lacks (backtick, TAB and the other controls but LF/CR, DEL).
    /// Bitmaps instead of an array: no lazy global, no bounds check in the hot loop.
    @inline(__always)
    private static func asciiSeptets(_ c: UInt8) -> Int {
        let bit = UInt64(1) << UInt64(c & 63)
        let (basic, ext) = c < 64 ? (basicLow, extLow) : (basicHigh, extHigh)
        return basic & bit != 0 ? 1 : ext & bit != 0 ? 2 : 0
    }

    /// 0x00–0x3F: LF, CR and everything from space to `?`; extension: form feed.
    private static let basicLow: UInt64 = 0xFFFF_FFFF_0000_2400
    private static let extLow: UInt64 = 0x0000_0000_0000_1000
    /// 0x40–0x7F: `@`, A–Z, `_`, a–z; extension: `[ \ ] ^ { | } ~`.
    private static let basicHigh: UInt64 = 0x07FF_FFFE_87FF_FFFF
    private static let extHigh: UInt64 = 0x7800_0000_7800_0000

    /// The non-ASCII characters of the GSM 03.38 basic set (1 septet) and `€` (2).
    @inline(__always)
    private static func nonASCIISeptets(_ s: UInt32) -> Int {
        switch s {
        case 0xA1, 0xA3, 0xA4, 0xA5, 0xA7, 0xBF,                        // ¡ £ ¤ ¥ § ¿
             0xC4, 0xC5, 0xC6, 0xC7, 0xC9, 0xD1, 0xD6, 0xD8, 0xDC, 0xDF, // Ä Å Æ Ç É Ñ Ö Ø Ü ß
             0xE0, 0xE4, 0xE5, 0xE6, 0xE8, 0xE9, 0xEC, 0xF1, 0xF2,       // à ä å æ è é ì ñ ò
             0xF6, 0xF8, 0xF9, 0xFC,                                     // ö ø ù ü
             0x393, 0x394, 0x398, 0x39B, 0x39E, 0x3A0, 0x3A3, 0x3A6, 0x3A8, 0x3A9: // Γ Δ Θ Λ Ξ Π Σ Φ Ψ Ω
            1
        case 0x20AC:  // €
            2
        default:
            0
        }
    }
}
