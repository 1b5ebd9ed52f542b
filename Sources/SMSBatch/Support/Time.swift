/// UTC calendar arithmetic without Foundation, for writing timestamps on the hot path.
package enum UTCTime {
    /// The civil date of a day count since 1970-01-01 (inverse of `daysFromCivil`).
    static func civil(days z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// `2026-11-26T10:05:00Z`
    package static func iso(_ epoch: Int64) -> String { format(epoch, compact: false) }

    static func isoBytes(_ epoch: Int64) -> [UInt8] { Array(iso(epoch).utf8) }

    /// `20261126T100500Z`, the job id's time.
    static func compact(_ epoch: Int64) -> String { format(epoch, compact: true) }

    private static func format(_ epoch: Int64, compact: Bool) -> String {
        let secs = Int(epoch)
        let day = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = secs - day * 86_400
        let (y, m, d) = civil(days: day)
        func p2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let date = compact ? "\(y)\(p2(m))\(p2(d))" : "\(y)-\(p2(m))-\(p2(d))"
        let time = compact
            ? "\(p2(rem / 3600))\(p2(rem / 60 % 60))\(p2(rem % 60))"
            : "\(p2(rem / 3600)):\(p2(rem / 60 % 60)):\(p2(rem % 60))"
        return "\(date)T\(time)Z"
    }
}
