extension SenderRule {
    /// True when a trimmed, non-empty sender cell meets the rule (else `invalid_sender`).
    func accepts(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        switch self {
        case .dltHeader:
            return s.count == 6 && s.allSatisfy(isUpper)
        case .numeric6:
            return s.count == 6 && s.allSatisfy(isDigit)
        case .alphanumeric:
            // An alphanumeric header, or a numeric one (a long code or short code).
            if (1...11).contains(s.count), s.contains(where: isLetter),
               s.allSatisfy({ isLetter($0) || isDigit($0) || $0 == 0x20 }) { return true }
            return (3...15).contains(s.count) && s.allSatisfy(isDigit)
        case .e164:
            let digits = s.first == UInt8(ascii: "+") ? UnsafeBufferPointer(rebasing: s[1...]) : s
            return (8...15).contains(digits.count) && digits[0] != 0x30 && digits.allSatisfy(isDigit)
        case .printable:
            guard isValidUTF8(s) else { return false }
            var scalars = 0
            var i = 0
            while i < s.count {
                let c = s[i]
                if c < 0x20 || c == 0x7F { return false }                       // C0, DEL
                if c == 0xC2, i + 1 < s.count, s[i + 1] < 0xA0 { return false } // C1: U+0080–009F
                if c & 0xC0 != 0x80 { scalars += 1 }
                i += 1
            }
            return (1...32).contains(scalars)
        }
    }
}

@inline(__always) private func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }
@inline(__always) private func isUpper(_ c: UInt8) -> Bool { c &- 0x41 < 26 }
@inline(__always) private func isLetter(_ c: UInt8) -> Bool { (c | 0x20) &- 0x61 < 26 }
