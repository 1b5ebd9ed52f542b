// Byte helpers for the per-row path: fields arrive as libcsv byte buffers and are checked
// without building a String (STYLE §8).

/// The field without leading and trailing spaces and tabs (SPEC §5: values are trimmed,
/// the message excepted). The result is rebased, so index 0 is its first byte.
@inline(__always)
func trimSpacesAndTabs(_ b: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
    var lo = 0
    var hi = b.count
    while lo < hi, b[lo] == 0x20 || b[lo] == 0x09 { lo += 1 }
    while hi > lo, b[hi - 1] == 0x20 || b[hi - 1] == 0x09 { hi -= 1 }
    return UnsafeBufferPointer(rebasing: b[lo..<hi])
}

/// True when the bytes are empty or only white space (`missing_message`).
///
/// White space is Unicode's White_Space property, not just space/tab/CR/LF: a message of
/// only U+00A0 or U+3000 (what spreadsheets paste) sends nothing visible either. The check
/// stops at the first other byte, so a real message costs one or two comparisons.
/// Bytes that are not valid UTF-8 count as not blank (`invalid_utf8` comes first anyway).
func isBlank(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    var i = 0
    let n = b.count
    while i < n {
        let c = b[i]
        if c == 0x20 || (c >= 0x09 && c <= 0x0D) { i += 1; continue }
        // The non-ASCII White_Space scalars, by their UTF-8 lead bytes.
        switch c {
        case 0xC2:  // U+0085, U+00A0
            guard i + 1 < n, b[i + 1] == 0x85 || b[i + 1] == 0xA0 else { return false }
            i += 2
        case 0xE1:  // U+1680
            guard i + 2 < n, b[i + 1] == 0x9A, b[i + 2] == 0x80 else { return false }
            i += 3
        case 0xE2:  // U+2000–200A, U+2028, U+2029, U+202F, U+205F
            guard i + 2 < n else { return false }
            let (c1, c2) = (b[i + 1], b[i + 2])
            let space = c1 == 0x80 ? (0x80...0x8A).contains(c2) || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF
                : c1 == 0x81 && c2 == 0x9F
            guard space else { return false }
            i += 3
        case 0xE3:  // U+3000
            guard i + 2 < n, b[i + 1] == 0x80, b[i + 2] == 0x80 else { return false }
            i += 3
        default:
            return false
        }
    }
    return true
}

/// Loads 8 bytes at `i` whatever their alignment (for the ASCII fast paths).
@inline(__always)
func load8(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt64 {
    UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)
}

/// The high bit of every byte of a word: a word `& highBits == 0` is 8 ASCII bytes.
let highBits: UInt64 = 0x8080_8080_8080_8080
