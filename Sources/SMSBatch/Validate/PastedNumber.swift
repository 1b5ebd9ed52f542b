import Foundation

/// Numbers as people paste them (README "Numbers as people paste them"): what spreadsheets,
/// web pages and phones put around the digits, rewritten to the plain form the normaliser
/// reads. Only a number the plain reading refuses comes here, so the hot path never pays.
enum PastedNumber {
    /// The field as plain ASCII the normaliser reads, or nil when there is nothing to rewrite:
    /// - Unicode spaces (U+00A0, U+2000–U+200B, U+202F, U+FEFF) go, like spaces;
    /// - dashes U+2010–U+2015 and U+2212 are `-`;
    /// - Devanagari (U+0966–U+096F) and full-width (U+FF10–U+FF19) digits are digits, a
    ///   full-width `+` is `+`;
    /// - Excel's text prefix `'` at the start goes;
    /// - a float's tail `.0…` after the digits goes (`9876543210.0`);
    /// - `(0)` after an international prefix goes (`+91 (0) 98765 43210`);
    /// - `0` + the home calling code + a whole national number is international
    ///   (`091 98765 43210`).
    static func cleaned(_ field: UnsafeBufferPointer<UInt8>, home: HomeCountry) -> [UInt8]? {
        // Letters are no number (most refused fields): leave before decoding anything.
        for c in field where (0x61...0x7A).contains(c | 0x20) { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var changed = false
        for scalar in String(decoding: field, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            case 0x00A0, 0x2000...0x200B, 0x202F, 0xFEFF: changed = true
            case 0x2010...0x2015, 0x2212: out.append(UInt8(ascii: "-")); changed = true
            case 0x0966...0x096F: out.append(0x30 + UInt8(scalar.value - 0x0966)); changed = true
            case 0xFF10...0xFF19: out.append(0x30 + UInt8(scalar.value - 0xFF10)); changed = true
            case 0xFF0B: out.append(UInt8(ascii: "+")); changed = true
            case 0...0x7F: out.append(UInt8(scalar.value))
            default: return nil  // a letter or a symbol: no number to find
            }
        }
        // Excel's text prefix.
        if out.first == UInt8(ascii: "'") { out.removeFirst(); changed = true }
        // A float's tail: digits, `.`, zeros only.
        if let dot = out.lastIndex(of: UInt8(ascii: ".")), dot > 0, dot < out.count - 1,
           out[(dot + 1)...].allSatisfy({ $0 == 0x30 }), out[..<dot].contains(where: { (0x30...0x39).contains($0) }),
           !out[..<dot].contains(UInt8(ascii: ".")) {
            out.removeSubrange(dot...)
            changed = true
        }
        var digits = out.filter { (0x30...0x39).contains($0) }
        let international = out.first(where: { $0 != 0x20 }) == UInt8(ascii: "+") || digits.starts(with: [0x30, 0x30])
        // `+91 (0) 98765 43210`: the trunk zero in brackets is not dialled from abroad.
        if international {
            var compact = out.filter { $0 != 0x20 }
            if let at = find(Array("(0)".utf8), in: compact) {
                compact.removeSubrange(at..<(at + 3))
                out = compact
                digits = out.filter { (0x30...0x39).contains($0) }
                changed = true
            }
        }
        // `091 98765 43210`: a trunk zero before the home calling code and a national number.
        let cc = Array(home.callingCode.utf8)
        if !international, let national = home.nationalLength, digits.first == 0x30,
           digits.count == 1 + cc.count + national, digits[1...].starts(with: cc) {
            out = [UInt8(ascii: "+")] + digits.dropFirst()
            changed = true
        }
        return changed ? out : nil
    }

    /// Why a field that is not a number looks like a spreadsheet lost its digits, nil when
    /// it does not. On bytes, no regular expression: every refused number comes here.
    static func diagnosis(_ field: UnsafeBufferPointer<UInt8>) -> String? {
        var b = Array(field)
        while b.first == 0x20 || b.first == 0x09 { b.removeFirst() }
        while b.last == 0x20 || b.last == 0x09 { b.removeLast() }
        if b.first == UInt8(ascii: "+") { b.removeFirst() }
        func isDigit(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) }
        let text = { String(decoding: field, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        // Scientific notation: d[.,]ddd E [+] d{1,2}
        if let e = b.firstIndex(where: { $0 == 0x45 || $0 == 0x65 }), e > 0 {
            let mantissa = b[..<e], exponent = b[(e + 1)...].drop { $0 == UInt8(ascii: "+") }
            let sep = mantissa.firstIndex { $0 == 0x2E || $0 == 0x2C }
            let mantissaOK = isDigit(mantissa.first!) && (sep == nil ? mantissa.count == 1
                : sep == mantissa.startIndex + 1 && mantissa.count > 2 && mantissa[(sep! + 1)...].allSatisfy(isDigit))
            if mantissaOK && (1...2).contains(exponent.count) && exponent.allSatisfy(isDigit) {
                return "scientific notation (\(text())): digits were lost in a spreadsheet; format the column as text and export again"
            }
        }
        // Thousands separators: d{1,3}(,ddd){2,}
        let groups = b.split(separator: 0x2C, omittingEmptySubsequences: false)
        if groups.count >= 3, (1...3).contains(groups[0].count), groups.allSatisfy({ $0.allSatisfy(isDigit) }),
           groups.dropFirst().allSatisfy({ $0.count == 3 }) {
            return "thousands separators (\(text())): a spreadsheet formatted the number; format the column as text and export again"
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}

extension RecipientNormalizer {
    /// `normalize`, then, for a field it refuses, the same on the field as people paste it.
    package static func normalizePasted(_ field: UnsafeBufferPointer<UInt8>, home: HomeCountry) -> PhoneNumber? {
        if let n = normalize(field, home: home) { return n }
        guard let cleaned = PastedNumber.cleaned(field, home: home) else { return nil }
        return cleaned.withUnsafeBufferPointer { normalize($0, home: home) }
    }
}
