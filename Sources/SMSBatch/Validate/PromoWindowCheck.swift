import Foundation

extension PromoWindow {
    /// True when `epoch` (UTC seconds) falls inside the window: start ≤ local time < end in
    /// `timezone`. A window whose end is before its start runs over midnight (22:00–06:00);
    /// one whose start equals its end is empty.
    func contains(_ epoch: Int64) -> Bool {
        let sod = secondOfDay(epoch)
        let (start, end) = (Int64(startMinute) * 60, Int64(endMinute) * 60)
        return start <= end ? (start <= sod && sod < end) : (sod >= start || sod < end)
    }

    /// The first instant at or after `epoch` inside the window: `epoch` itself when inside,
    /// else the next local `start` (where a deferred promotional batch goes).
    /// An empty window (start = end) has no such instant: the next local start is returned.
    func nextOpening(after epoch: Int64) -> Int64 {
        if contains(epoch) { return epoch }
        let tz = zone
        let start = Int64(startMinute) * 60
        let local = epoch + Int64(tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(epoch))))
        // Not inside means before today's start, or (for a same-day window) after its end.
        var day = floorDiv(local, 86_400) + (floorMod(local, 86_400) < start ? 0 : 1)
        // A DST jump can move the resolved instant; the next day's start then does.
        for _ in 0..<3 {
            let t = utcSeconds(fromLocal: day * 86_400 + start, in: tz)
            if t >= epoch { return t }
            day += 1
        }
        return utcSeconds(fromLocal: day * 86_400 + start, in: tz)
    }

    // MARK: -

    /// The configured zone; `ConfigLoader` rejects unknown names, so UTC is only a fallback.
    private var zone: TimeZone { TimeZone(identifier: timezone) ?? TimeZone(secondsFromGMT: 0)! }

    private func secondOfDay(_ epoch: Int64) -> Int64 {
        floorMod(epoch + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(epoch)))), 86_400)
    }
}

@inline(__always) private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }
@inline(__always) private func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }
