import Foundation

/// How an .xlsx number cell is shown: its number format (built-in id or format code) read
/// into what matters for a recipient file: a date (written in the SPEC's `YYYY-MM-DD
/// HH:MM:SS`, read in `validate.timezone`), or a number with its decimals, digit grouping,
/// leading zeros, percent, exponent and literal text. General gives every digit of a whole
/// number (919876543210, never 9.19876543210E+11).
struct CellFormat: Equatable {
    enum Kind: Equatable {
        case general
        /// hasDate false: a time of day only.
        case date(hasDate: Bool)
        case number(decimals: Int, grouping: Bool, minDigits: Int, percent: Bool, exponent: Bool)
    }

    var kind: Kind
    var prefix = ""
    var suffix = ""

    static let general = CellFormat(kind: .general)

    /// Excel's built-in number formats that matter (ECMA-376 §18.8.30); the others are General.
    static func builtIn(_ id: Int) -> CellFormat {
        switch id {
        case 1: parse("0")
        case 2: parse("0.00")
        case 3: parse("#,##0")
        case 4: parse("#,##0.00")
        case 9: parse("0%")
        case 10: parse("0.00%")
        case 11: parse("0.00E+00")
        case 14...17, 22, 27...36, 50...58: CellFormat(kind: .date(hasDate: true))
        case 18...21, 45...47: CellFormat(kind: .date(hasDate: false))
        case 37, 38: parse("#,##0")
        case 39, 40: parse("#,##0.00")
        case 48: parse("##0.0E+0")
        default: .general
        }
    }

    /// Reads a format code's first section (the one for positive numbers).
    static func parse(_ code: String) -> CellFormat {
        var literal = ""
        var pattern = ""
        var inQuote = false
        var chars = Array(code.unicodeScalars)
        var i = 0
        var section: [Unicode.Scalar] = []
        // The first section: up to a `;` outside quotes.
        while i < chars.count {
            let c = chars[i]
            if c == "\"" { inQuote.toggle() }
            if c == ";" && !inQuote { break }
            if c == "\\" && i + 1 < chars.count { section.append(c); section.append(chars[i + 1]); i += 2; continue }
            section.append(c)
            i += 1
        }
        chars = section
        i = 0
        var prefix = "", suffix = ""
        var seenDigit = false
        func addLiteral(_ s: String) { if seenDigit { suffix += s } else { prefix += s } }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\"":
                literal = ""
                i += 1
                while i < chars.count && chars[i] != "\"" { literal.unicodeScalars.append(chars[i]); i += 1 }
                addLiteral(literal)
            case "\\":
                if i + 1 < chars.count { addLiteral(String(chars[i + 1])); i += 1 }
            case "[":
                // [Red], [>100], [$-409], or a currency [$₹-4009]: only the currency's symbol shows.
                var inside = ""
                i += 1
                while i < chars.count && chars[i] != "]" { inside.unicodeScalars.append(chars[i]); i += 1 }
                if inside.hasPrefix("$") { addLiteral(String(inside.dropFirst().prefix { $0 != "-" })) }
                if inside.lowercased().hasPrefix("h") || inside.lowercased().hasPrefix("m") || inside.lowercased().hasPrefix("s") { pattern += "h" }
            case "_", "*":
                i += 1  // a space as wide as the next character; a fill character
                if c == "_" { addLiteral(" ") }
            case "0", "#", "?", ".", ",", "%", "E", "e", "+", "-":
                if c == "0" || c == "#" || c == "?" { seenDigit = true }
                if (c == "E" || c == "e") && !(i + 1 < chars.count && (chars[i + 1] == "+" || chars[i + 1] == "-")) {
                    pattern.unicodeScalars.append(c)  // a date's era, not an exponent
                } else if (c == "+" || c == "-") && !(pattern.last == "E" || pattern.last == "e") {
                    addLiteral(String(c))
                } else {
                    pattern.unicodeScalars.append(c)
                }
            case "@":
                return CellFormat(kind: .general, prefix: prefix, suffix: suffix)
            case " ", "(", ")", "$", "/", ":":
                if c == "/" || c == ":" { pattern.unicodeScalars.append(c) } else { addLiteral(String(c)) }
            default:
                pattern.unicodeScalars.append(c)
            }
            i += 1
        }
        let lower = pattern.lowercased()
        if lower.contains("general") { return CellFormat(kind: .general, prefix: prefix, suffix: suffix) }
        let dateLetters = lower.filter { "ymdhs".contains($0) }
        if !dateLetters.isEmpty {
            let hasDate = lower.contains("y") || lower.contains("d") || (lower.contains("m") && !lower.contains("h") && !lower.contains("s"))
            return CellFormat(kind: .date(hasDate: hasDate))
        }
        if lower.contains("/") { return .general }  // a fraction
        let mantissa = pattern.split(whereSeparator: { $0 == "E" || $0 == "e" }).first.map(String.init) ?? ""
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integer = parts.first.map(String.init) ?? ""
        let decimals = parts.count > 1 ? parts[1].filter { $0 == "0" || $0 == "#" || $0 == "?" }.count : 0
        let exponent = pattern.contains("E") || pattern.contains("e")
        // A comma after the last digit scales by 1,000; between digits it groups.
        let trimmed = integer.reversed().drop { $0 == "," }
        let grouping = trimmed.contains(",")
        let minDigits = integer.filter { $0 == "0" }.count
        if !seenDigit { return CellFormat(kind: .general, prefix: prefix, suffix: suffix) }
        return CellFormat(kind: .number(decimals: decimals, grouping: grouping, minDigits: minDigits, percent: pattern.contains("%"), exponent: exponent),
                          prefix: prefix, suffix: suffix)
    }

    /// The text a person sees for `value` in this format.
    func display(_ value: Double, date1904: Bool) -> String {
        switch kind {
        case .general:
            return prefix + CellFormat.general(value) + suffix
        case .date(let hasDate):
            return CellFormat.dateText(serial: value, date1904: date1904, hasDate: hasDate)
        case .number(let decimals, let grouping, let minDigits, let percent, let exponent):
            guard value.isFinite else { return CellFormat.general(value) }
            var v = value
            if percent { v *= 100 }
            if exponent {
                return prefix + String(format: "%.\(decimals)E", v) + suffix
            }
            var text = String(format: "%.\(decimals)f", abs(v))
            let negative = v < 0 && text.contains(where: { $0 != "0" && $0 != "." })
            var integer = String(text.prefix { $0 != "." })
            let fraction = text.dropFirst(integer.count)
            if integer == "0" && minDigits == 0 { integer = "" }
            if integer.count < minDigits { integer = String(repeating: "0", count: minDigits - integer.count) + integer }
            if grouping && integer.count > 3 {
                var grouped = ""
                for (k, ch) in integer.enumerated() {
                    if k > 0 && (integer.count - k) % 3 == 0 { grouped.append(",") }
                    grouped.append(ch)
                }
                integer = grouped
            }
            text = integer + fraction
            if text.isEmpty { text = "0" }
            return (negative ? "-" : "") + prefix + text + (percent ? "%" : "") + suffix
        }
    }

    /// General: a whole number with all its digits; other numbers in their shortest form.
    static func general(_ v: Double) -> String {
        if v.isFinite && v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// An Excel date serial as `YYYY-MM-DD HH:MM:SS` (or `HH:MM:SS` for a time of day),
    /// rounded to the second. The 1900 system counts a 29 February 1900 that never was.
    static func dateText(serial: Double, date1904: Bool, hasDate: Bool) -> String {
        guard serial.isFinite, serial >= 0, serial < 2_958_466 else { return general(serial) }
        var seconds = Int64((serial * 86_400).rounded())
        var days = seconds / 86_400
        seconds %= 86_400
        let time = String(format: "%02lld:%02lld:%02lld", seconds / 3600, (seconds / 60) % 60, seconds % 60)
        if !hasDate && days == 0 { return time }
        // Days from 1970-01-01.
        // Days from 1970-01-01: 1904-01-01 is day -24,107; serial 25,569 is 1970-01-01.
        if date1904 { days -= 24_107 } else { days -= days < 60 ? 25_568 : 25_569 }
        let (y, m, d) = UTCTime.civil(days: Int(days))
        return String(format: "%04d-%02d-%02d ", y, m, d) + time
    }
}
