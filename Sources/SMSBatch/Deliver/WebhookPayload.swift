import Foundation

/// Reads the provider's pushed delivery reports (SPEC §11): one JSON object, or a list of
/// them. Lenient as the provider is sloppy: numbers may come as strings, a trailing comma is
/// accepted, unknown fields are ignored.
package enum WebhookPayload {
    package enum Refusal: Error, Equatable {
        /// Not JSON (truncated, NUL bytes, not UTF-8), or no report in it.
        case unreadable(String)
    }

    /// The readable reports and why the others were not (a list is recorded in part rather
    /// than lost whole). Throws when none is readable.
    package static func reports(_ body: [UInt8]) throws(Refusal) -> [DeliveryReport] {
        try read(body).reports
    }

    package static func read(_ body: [UInt8]) throws(Refusal) -> (reports: [DeliveryReport], refused: [String]) {
        guard !body.isEmpty else { throw .unreadable("empty body: expected a JSON delivery report") }
        guard let json = JSONValue.parse(body) else { throw .unreadable("the body is not JSON (truncated, or bytes JSON does not allow)") }
        let items: [JSONValue]
        switch json {
        case .object: items = [json]
        case .array(let list): items = list
        default: throw .unreadable("expected a JSON object (or a list of them)")
        }
        guard !items.isEmpty else { throw .unreadable("an empty list: no report in it") }
        var out: [DeliveryReport] = []
        var refused: [String] = []
        for (k, item) in items.enumerated() {
            let at = k == 0 && items.count == 1 ? "" : " (report \(k + 1))"
            guard case .object = item else { refused.append("expected a JSON object\(at)"); continue }
            guard let status = item["status"]?.text, !status.trimmingCharacters(in: .whitespaces).isEmpty else {
                refused.append("no status\(at)")
                continue
            }
            let id = item["id"]?.text ?? ""
            let custom = item["custom"]?.text ?? item["cid"]?.text ?? item["customid"]?.text ?? ""
            guard !id.isEmpty || !custom.isEmpty else { refused.append("neither id nor custom\(at): nothing to match it by"); continue }
            out.append(DeliveryReport(messageId: id, custom: custom, status: status, at: time(item)))
        }
        if out.isEmpty { throw .unreadable(refused.first ?? "no report in it") }
        return (out, refused)
    }

    /// `deliv_at` (unix seconds, as a number or a string), else `deliv_time` in the
    /// provider's local time (India), else nil.
    static func time(_ item: JSONValue) -> Int64? {
        if let text = item["deliv_at"]?.text, let t = DeliveryReport.seconds(text) { return t }
        if let text = item["deliv_time"]?.text { return localTime(text) }
        return nil
    }

    /// `yyyy-mm-dd H:i:s` in India's time (UTC+5:30, no DST) as UTC seconds.
    static func localTime(_ text: String) -> Int64? {
        let parts = text.split(whereSeparator: { $0 == "-" || $0 == " " || $0 == ":" }).compactMap { Int($0) }
        guard parts.count == 6 else { return nil }
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 19_800)!
        return calendar.date(from: c).map { Int64($0.timeIntervalSince1970) }
    }
}
