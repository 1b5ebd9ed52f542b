/// True when the bytes are well-formed UTF-8 (`invalid_utf8`): no overlong forms, no
/// surrogates (U+D800–DFFF), nothing above U+10FFFF, no truncated sequence.
///
/// Follows the Unicode Standard's table 3-7 of well-formed byte sequences. ASCII runs are
/// checked 8 bytes at a time, since most fields are plain ASCII.
func isValidUTF8(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    let n = b.count
    var i = 0
    while i < n {
        if i + 8 <= n, load8(b, i) & highBits == 0 { i += 8; continue }
        let c = b[i]
        if c < 0x80 { i += 1; continue }
        // Allowed range of the second byte, and how many bytes the sequence has.
        let len: Int
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: len = 2
        case 0xE0: len = 3; lo = 0xA0          // not overlong
        case 0xE1...0xEC, 0xEE...0xEF: len = 3
        case 0xED: len = 3; hi = 0x9F          // not a surrogate
        case 0xF0: len = 4; lo = 0x90          // not overlong
        case 0xF1...0xF3: len = 4
        case 0xF4: len = 4; hi = 0x8F          // not above U+10FFFF
        default: return false                  // 80–C1 (continuation, overlong 2-byte), F5–FF
        }
        guard i + len <= n, b[i + 1] >= lo, b[i + 1] <= hi else { return false }
        var k = 2
        while k < len {
            guard b[i + k] & 0xC0 == 0x80 else { return false }
            k += 1
        }
        i += len
    }
    return true
}
