import Foundation

/// Reads `schedule_at` cells (SPEC §5).
package enum ScheduleParser {
    /// UTC seconds since 1970 for a trimmed `schedule_at` cell, or nil when it is not a time
    /// (`invalid_schedule`).
    ///
    /// Accepted: `YYYY-MM-DD` then `T` or a space, `HH:MM`, optional `:SS`, optional fraction
    /// `.f…` (dropped), then optionally `Z` or an offset `±HH:MM`, `±HHMM`, `±HH`. Without an
    /// offset the time is local to `timeZone`. Ranges are checked (no 2026-02-30, no 24:00,
    /// no leap second).
    package static func parse(_ b: UnsafeBufferPointer<UInt8>, timeZone: TimeZone) -> Int64? {
        var p = Cursor(b: b)
        guard let year = p.digits(4), p.skip(0x2D), let month = p.digits(2), p.skip(0x2D),
              let day = p.digits(2), p.skip(0x54) || p.skip(0x74) || p.skip(0x20),
              let hour = p.digits(2), p.skip(0x3A), let minute = p.digits(2)
        else { return nil }
        var second = 0
        if p.skip(0x3A) {
            guard let s = p.digits(2) else { return nil }
            second = s
            if p.skip(0x2E) {
                guard p.digit() != nil else { return nil }
                while p.digit() != nil {}
            }
        }
        guard (1...12).contains(month), (1...daysIn(month, year)).contains(day),
              hour < 24, minute < 60, second < 60 else { return nil }
        let local = daysFromCivil(year, month, day) * 86_400
            + Int64(hour * 3600 + minute * 60 + second)

        if p.atEnd { return utcSeconds(fromLocal: local, in: timeZone) }
        if p.skip(0x5A) || p.skip(0x7A) { return p.atEnd ? local : nil }  // Z
        let sign: Int64
        if p.skip(0x2B) { sign = 1 } else if p.skip(0x2D) { sign = -1 } else { return nil }
        guard let oh = p.digits(2), oh < 24 else { return nil }
        var om = 0
        if !p.atEnd {
            _ = p.skip(0x3A)
            guard let m = p.digits(2), m < 60, p.atEnd else { return nil }
            om = m
        }
        return local - sign * Int64(oh * 3600 + om * 60)
    }

    /// A forward-only reader over the cell's bytes.
    private struct Cursor {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        var atEnd: Bool { i == b.count }

        mutating func skip(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        mutating func digit() -> Int? {
            guard i < b.count, b[i] &- 0x30 < 10 else { return nil }
            defer { i += 1 }
            return Int(b[i] - 0x30)
        }

        /// Exactly `n` digits as a number.
        mutating func digits(_ n: Int) -> Int? {
            var v = 0
            for _ in 0..<n {
                guard let d = digit() else { return nil }
                v = v * 10 + d
            }
            return v
        }
    }
}

// MARK: - Calendar arithmetic

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil).
func daysFromCivil(_ y: Int, _ m: Int, _ d: Int) -> Int64 {
    let y = Int64(m <= 2 ? y - 1 : y)
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = Int64((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1)
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

func daysIn(_ month: Int, _ year: Int) -> Int {
    switch month {
    case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
}

/// The UTC instant of a wall-clock time in `tz`, `local` being that wall time counted in
/// seconds as if it were UTC.
///
/// Where clocks fall back and the wall time happens twice, the earlier instant wins; where
/// they spring forward and it never happens, it is read with the offset in force before the
/// jump (02:30 in a gap becomes 03:30 new time) — both as ICU/Foundation's Calendar does.
/// Offsets are sampled a day either side: no zone changes its offset twice within two days.
func utcSeconds(fromLocal local: Int64, in tz: TimeZone) -> Int64 {
    func offset(_ t: Int64) -> Int64 { Int64(tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))) }
    let before = offset(local - 86_400)
    let after = offset(local + 86_400)
    if before == after { return local - before }
    let tBefore = local - before
    let tAfter = local - after
    let beforeFits = offset(tBefore) == before
    let afterFits = offset(tAfter) == after
    switch (beforeFits, afterFits) {
    case (true, true): return min(tBefore, tAfter)
    case (false, true): return tAfter
    default: return tBefore
    }
}
