import Foundation

/// Text forms that pipeline.yaml accepts for durations, sizes and times. Pure functions:
/// nil means "does not parse", the caller names the key.
public enum ConfigText {
    /// `0`, `300`, `30s`, `5m`, `1h`, `90d`, or units run together (`1h30m`). A bare number is
    /// seconds. nil for anything else, negatives and overflow.
    public static func seconds(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !s.isEmpty else { return nil }
        if s.allSatisfy(\.isASCIIDigit) { return Int(s) }
        var total = 0, digits = ""
        for ch in s {
            if ch.isASCIIDigit { digits.append(ch); continue }
            let unit: Int
            switch ch {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            default: return nil
            }
            guard let n = Int(digits) else { return nil }
            let (part, o1) = n.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(part)
            guard !o1, !o2 else { return nil }
            total = sum
            digits = ""
        }
        return digits.isEmpty ? total : nil
    }

    /// Seconds as the shortest of `90d`, `1h`, `5m`, `30s` that is exact, for messages.
    static func duration(_ seconds: Int) -> String {
        for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m")] where seconds != 0 && seconds % unit == 0 {
            return "\(seconds / unit)\(name)"
        }
        return "\(seconds)s"
    }

    /// A byte count: a plain integer, or one with a binary suffix `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
    /// `G`/`GB`/`GiB` (any case). Binary because SPEC §3 itself calls 209715200 "200 MB".
    static func bytes(_ text: String) -> Int64? {
        let s = text.trimmingCharacters(in: .whitespaces)
        let number = s.prefix(while: \.isASCIIDigit)
        let unit = s.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        let shifts = ["": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20,
                      "g": 30, "gb": 30, "gib": 30]
        guard let n = Int64(number), let shift = shifts[unit] else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: Int64(1) << shift)
        return overflow ? nil : v
    }

    /// `HH:MM` (hour may be one digit) as minutes after midnight; `24:00` only when `allowMidnightEnd`.
    static func minuteOfDay(_ text: String, allowMidnightEnd: Bool = false) -> Int? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
              let h = Int(parts[0]), let m = Int(parts[1]), m < 60
        else { return nil }
        if h == 24 && m == 0 && allowMidnightEnd { return 1440 }
        return h < 24 ? h * 60 + m : nil
    }

    /// ISO 8601 with a `Z` or numeric offset (`2026-03-01T10:00:00+05:30`, seconds and
    /// fraction optional, `T` or a space) as whole seconds since 1970. nil without an offset:
    /// a time that names no zone would be read differently on different machines.
    static func epochSeconds(iso text: String) -> Int64? {
        let s = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= s.count else { return nil }
            var n = 0
            for b in s[i..<(i + width)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) else { return nil }
                n = n * 10 + Int(b - UInt8(ascii: "0"))
            }
            i += width
            return n
        }
        func eat(_ chars: String) -> Bool {
            guard i < s.count, chars.utf8.contains(s[i]) else { return false }
            i += 1
            return true
        }
        guard let y = number(4), eat("-"), let mo = number(2), eat("-"), let d = number(2),
              eat("Tt "), let h = number(2), eat(":"), let mi = number(2)
        else { return nil }
        var sec = 0
        if eat(":") {
            guard let v = number(2) else { return nil }
            sec = v
            if eat(".") {
                let start = i
                while i < s.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s[i]) { i += 1 }
                guard i > start else { return nil }
            }
        }
        var offset = 0
        if eat("Zz") {
        } else if i < s.count, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            let sign = s[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = number(2), oh < 24 else { return nil }
            var om = 0
            if i < s.count {
                _ = eat(":")
                guard let v = number(2), v < 60 else { return nil }
                om = v
            }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == s.count, (1...12).contains(mo), d >= 1,
              d <= daysFromCivil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) - daysFromCivil(y, mo, 1),
              h < 24, mi < 60, sec < 60
        else { return nil }
        let days = daysFromCivil(y, mo, d)
        return Int64(days) * 86_400 + Int64(h * 3600 + mi * 60 + sec - offset)
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm),
    /// so no Calendar or time zone database is involved.
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

// fileprivate: other stages may want their own digit helpers in this module.
extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
