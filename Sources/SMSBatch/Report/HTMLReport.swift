import Foundation

/// `report.html` beside summary.json (issue 11, first part): one self-contained page — inline
/// CSS and SVG, no script, nothing fetched from the network — built from summary.json and the
/// first rows of rejects.csv, so it can be written again whenever summary.json changes
/// (delivery reports). Printable on A4. Numbers are grouped by `report.locale`.
struct HTMLReport {
    static let name = "report.html"

    /// How numbers are written.
    var locale: NumberLocale = .international

    /// What each reject reason means, for people (SPEC §5).
    static let meanings: [String: String] = [
        "wrong_field_count": "the row has more or fewer fields than the header (or broken quoting)",
        "invalid_utf8": "the row's bytes are not UTF-8 text",
        "missing_recipient": "no phone number",
        "invalid_recipient": "the phone number is not a valid mobile number",
        "invalid_product": "the product code is not one the provider knows",
        "foreign_recipient": "a number outside the home country for a domestic-only product",
        "missing_sender": "no sender id, and no default",
        "invalid_sender": "the sender id does not fit the product's rules",
        "missing_message": "the message is empty",
        "message_too_long": "the message needs more SMS parts than allowed",
        "invalid_schedule": "schedule_at is not a time the platform accepts",
        "invalid_dlt_id": "a DLT template or entity id is malformed",
        "outside_promo_window": "a promotional message scheduled outside the promo window",
        "opted_out": "the number is on the opt-out list",
    ]

    /// Writes report.html into `dir` from its summary.json; nothing when there is none.
    static func write(dir: String, locale: NumberLocale = .international) throws(ReportError) {
        let summaryPath = (dir as NSString).appendingPathComponent("summary.json")
        guard let data = FileManager.default.contents(atPath: summaryPath), let summary = JSONValue.parse(data) else { return }
        var examples: [[String]] = []
        let rejects = (dir as NSString).appendingPathComponent("rejects.csv")
        if FileManager.default.fileExists(atPath: rejects) {
            // The header and the first five rows; the rest of the file is never read.
            try? CSVRecords.read(path: rejects, limit: 6) { (fields: [[UInt8]]) throws(ReportError) in
                examples.append(fields.map { String(decoding: $0, as: UTF8.self) })
            }
        }
        var file = try OutputFile(path: (dir as NSString).appendingPathComponent(name))
        try file.write(HTMLReport(locale: locale).render(summary, rejects: examples))
        try file.commit()
    }

    func render(_ s: JSONValue, rejects: [[String]]) -> String {
        func int(_ v: JSONValue?) -> Int { v?.text.flatMap { Int($0) } ?? 0 }
        func text(_ key: String) -> String { s[key]?.text ?? "" }
        var h = ""
        h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        h += "<title>smsbatch job \(Self.esc(text("job")))</title><style>\(Self.css)</style></head><body>\n"

        // The file and where it went.
        let destination = s["destination"]?.text ?? (s["dry_run"] == .bool(true) ? "nowhere (dry run)" : "-")
        h += "<header><h1>Job \(Self.esc(text("job")))</h1><p class=\"status \(Self.esc(text("status")))\">\(Self.esc(text("status")))</p></header>\n"
        h += "<section><h2>File</h2><table class=\"facts\">"
        for (label, value) in [("file", text("input")), ("size", bytes(int(s["bytes"]))), ("SHA-256", text("sha256")),
                               ("started", text("started_at")), ("finished", text("finished_at")), ("sent to", destination),
                               ("kind", text("kind"))] {
            h += "<tr><th>\(label)</th><td>\(Self.esc(value))</td></tr>"
        }
        if let reason = s["reject_reason"]?.text {
            h += "<tr><th>rejected</th><td>\(Self.esc(reason)): \(Self.esc(s["reject_detail"]?.text ?? ""))</td></tr>"
        }
        h += "</table></section>\n"

        // The funnel.
        let delivery = s["delivery"]
        var funnel: [(String, Int)] = [("rows", int(s["rows"])), ("valid", int(s["valid"])), ("unique (to send)", int(s["to_send"])),
                                       ("submitted", int(s["submitted"]))]
        if let delivery { funnel.append(("delivered", int(delivery["delivered"]))) }
        h += "<section><h2>Rows</h2>" + bars(funnel, total: max(1, int(s["rows"])), cssClass: "funnel") + "</section>\n"

        // Rejects by reason, with examples.
        if case .object(let reasons)? = s["invalid_by_reason"], !reasons.isEmpty {
            let sorted = reasons.map { ($0.0, int($0.1)) }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }
            h += "<section><h2>Rejected rows: \(number(int(s["invalid"])))</h2>"
            h += bars(sorted.map { ($0.0, $0.1) }, total: max(1, sorted.first?.1 ?? 1), cssClass: "rejects")
            h += "<table><tr><th>reason</th><th>rows</th><th>what it means</th></tr>"
            for (code, n) in sorted {
                h += "<tr><td><code>\(Self.esc(code))</code></td><td class=\"n\">\(number(n))</td><td>\(Self.esc(Self.meanings[code] ?? ""))</td></tr>"
            }
            h += "</table>"
            if rejects.count > 1 {
                h += "<h3>First rejected rows (rejects.csv)</h3><table><tr><th>row</th><th>reason</th><th>detail</th></tr>"
                for r in rejects.dropFirst() where r.count >= 3 {
                    h += "<tr><td class=\"n\">\(Self.esc(r[0]))</td><td><code>\(Self.esc(r[1]))</code></td><td>\(Self.esc(r[2]))</td></tr>"
                }
                h += "</table>"
            }
            h += "</section>\n"
        }

        // Duplicates by kind.
        if case .object(let kinds)? = s["duplicates_by_reason"], int(s["duplicates"]) > 0 {
            h += "<section><h2>Duplicates: \(number(int(s["duplicates"])))</h2><table>"
            for (kind, n) in kinds { h += "<tr><th>\(Self.esc(kind.replacingOccurrences(of: "_", with: " ")))</th><td class=\"n\">\(number(int(n)))</td></tr>" }
            h += "</table></section>\n"
        }

        // Caps: how close the job came to each limit.
        if case .array(let caps)? = s["caps"], !caps.isEmpty {
            let parts = int(s["parts"])
            // Rejected over a cap: the file was not split, and the whole of it is what counts.
            let wholeFile = s["reject_reason"]?.text == "over_cap"
            h += "<section><h2>Caps</h2>"
            if wholeFile {
                h += "<p>The file needs \(number(parts)) parts under the caps, and caps.over_cap is reject: it was rejected whole, nothing was sent.</p>"
            } else if parts > 1 {
                h += "<p>\(number(parts)) parts: a cap applies to each part, so the largest part is what counts.</p>"
            }
            h += "<table class=\"caps\"><tr><th>limit</th><th class=\"n\">used</th><th class=\"n\">of</th><th></th><th class=\"n\">share</th></tr>"
            for cap in caps {
                let name = cap["name"]?.text ?? ""
                let limit = int(cap["limit"])
                let used = wholeFile ? int(cap["used"]) : cap["largest_part"].flatMap { $0 == .null ? nil : int($0) } ?? int(cap["used"])
                let share = limit > 0 ? Double(used) / Double(limit) : 0
                let show = name == "file_bytes" ? { (n: Int) in shortBytes(n) } : { (n: Int) in number(n) }
                h += "<tr><th>\(Self.esc(Self.capLabels[name] ?? name))</th><td class=\"n\">\(show(used))</td><td class=\"n\">\(show(limit))</td>"
                h += "<td class=\"meter\">\(meter(share))</td><td class=\"n\">\(percent(share))</td></tr>"
            }
            h += "</table></section>\n"
        }

        // Batches in time.
        if case .array(let plan)? = s["plan"], !plan.isEmpty {
            h += "<section><h2>Batches: \(number(plan.count)) in \(number(int(s["parts"]))) part\(int(s["parts"]) == 1 ? "" : "s")</h2>"
            h += timeline(plan, startedAt: s["started_at"]?.text.flatMap(parseISO8601))
            var deliveredBy: [Int: JSONValue] = [:]
            if case .array(let byBatch)? = delivery?["by_batch"] { for b in byBatch { deliveredBy[int(b["batch"])] = b } }
            let sent = plan.contains { $0["submitted"] != nil && $0["submitted"] != .null }
            h += "<table class=\"batches\"><tr><th class=\"n\">batch</th><th class=\"n\">part</th><th class=\"n\">rows</th><th class=\"n\">requests</th><th>scheduled</th>"
            h += "<th class=\"n\">deferred (P)</th>"
            if sent { h += "<th class=\"n\">submitted</th><th class=\"n\">failed</th>" }
            if !deliveredBy.isEmpty { h += "<th class=\"n\">delivered</th><th class=\"n\">undelivered</th>" }
            h += "</tr>"
            for b in plan {
                let time = b["scheduled_at"]?.text ?? "at once"
                let deferred = int(b["deferred_rows"])
                h += "<tr\(deferred > 0 ? " class=\"deferred\"" : "")><td class=\"n\">\(int(b["batch"]))</td><td class=\"n\">\(int(b["part"]))</td><td class=\"n\">\(number(int(b["rows"])))</td>"
                h += "<td class=\"n\">\(number(int(b["requests"])))</td><td class=\"time\">\(Self.esc(time))</td><td class=\"n\">\(deferred > 0 ? number(deferred) : "")</td>"
                if sent { h += "<td class=\"n\">\(number(int(b["submitted"])))</td><td class=\"n\">\(number(int(b["failed"])))</td>" }
                if !deliveredBy.isEmpty {
                    let d = deliveredBy[int(b["batch"])]
                    h += "<td class=\"n\">\(d.map { number(int($0["delivered"])) } ?? "")</td>"
                    h += "<td class=\"n\">\(d.map { number(int($0["failed"]) + int($0["expired_unknown"])) } ?? "")</td>"
                }
                h += "</tr>"
            }
            h += "</table></section>\n"
        }

        // What it will cost: encodings and SMS parts.
        if let messages = s["messages"], case .object(let parts)? = messages["by_parts"], !parts.isEmpty {
            h += "<section><h2>Messages: \(number(int(messages["sms_parts"]))) SMS parts</h2><table>"
            if case .object(let encodings)? = messages["by_encoding"] {
                for (name, n) in encodings {
                    let label = name == "gsm7" ? "GSM-7 (160 characters a part)" : name == "ucs2" ? "UCS-2 (70 characters a part)" : "not SMS"
                    h += "<tr><th>\(Self.esc(label))</th><td class=\"n\">\(number(int(n)))</td></tr>"
                }
            }
            h += "</table>"
            h += bars(parts.map { ("\($0.0) part\($0.0 == "1" ? "" : "s")", int($0.1)) }, total: max(1, parts.map { int($0.1) }.max() ?? 1), cssClass: "parts")
            h += "</section>\n"
        }

        // Delivery.
        if let delivery, case .object(let byStatus)? = delivery["by_status"], !byStatus.isEmpty {
            h += "<section><h2>Delivery</h2>"
            let rows = byStatus.map { ($0.0, int($0.1)) }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }
            h += bars(rows, total: max(1, rows.map(\.1).reduce(0, +)), cssClass: "delivery")
            h += "<p>updated \(Self.esc(delivery["updated_at"]?.text ?? ""))</p></section>\n"
        }

        // Warnings.
        if case .array(let warnings)? = s["warnings"], !warnings.isEmpty {
            h += "<section><h2>Warnings</h2><ul>"
            for w in warnings { h += "<li>\(Self.esc(w.text ?? ""))</li>" }
            h += "</ul></section>\n"
        }
        h += "<footer>smsbatch · summary.json holds every number on this page</footer></body></html>\n"
        return h
    }

    /// What each entry of summary.json's `caps` limits.
    static let capLabels: [String: String] = [
        "file_bytes": "file size (input.max_file_bytes)",
        "bulk": "messages in a bulk campaign (caps.bulk)",
        "quick": "messages in a quick campaign (caps.quick)",
        "channel": "WhatsApp, RCS and Viber messages (caps.channel)",
        "voice": "voice messages (caps.voice)",
        "batch_size": "rows a batch (split.batch_size; the provider's largest)",
    ]

    /// A share of a limit as a bar: green to 80 %, amber to 100 %, red over.
    func meter(_ share: Double) -> String {
        let w = Int((min(share, 1) * 200).rounded())
        let level = share > 1 ? "over" : share > 0.8 ? "near" : "ok"
        return "<svg class=\"meter\" viewBox=\"0 0 200 10\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
            + "<rect class=\"track\" x=\"0\" y=\"0\" width=\"200\" height=\"10\"></rect>"
            + "<rect class=\"\(level)\" x=\"0\" y=\"0\" width=\"\(w)\" height=\"10\"></rect></svg>"
    }

    func percent(_ share: Double) -> String {
        let p = share * 100
        if p > 0 && p < 0.1 { return "under 0.1 %" }
        return String(format: "%.1f %%", p)
    }

    /// Horizontal bars as inline SVG, each with its label and number.
    func bars(_ items: [(String, Int)], total: Int, cssClass: String) -> String {
        let rowHeight = 22, labelWidth = 170, width = 640
        var svg = "<svg class=\"\(cssClass)\" viewBox=\"0 0 \(width) \(items.count * rowHeight + 4)\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
        for (k, (label, n)) in items.enumerated() {
            let y = k * rowHeight + 2
            let w = max(n > 0 ? 1 : 0, Int(Double(width - labelWidth - 90) * Double(n) / Double(total)))
            svg += "<text x=\"0\" y=\"\(y + 15)\">\(Self.esc(label))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(w)\" height=\"15\"></rect>"
            svg += "<text x=\"\(labelWidth + w + 6)\" y=\"\(y + 15)\">\(number(n))</text>"
        }
        return svg + "</svg>"
    }

    /// Batches on a line by their scheduled time; a batch that goes at once sits at the job's
    /// start. Deferred promotional batches are marked.
    func timeline(_ plan: [JSONValue], startedAt: Int64?) -> String {
        let times = plan.map { b in b["scheduled_at"]?.text.flatMap(parseISO8601) ?? startedAt }
        let known = times.compactMap { $0 }
        guard let first = known.min(), let last = known.max(), last > first else { return "" }
        let width = 640.0, left = 24.0, right = 24.0
        var svg = "<svg class=\"timeline\" viewBox=\"0 0 640 78\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
        svg += "<line x1=\"\(left)\" y1=\"30\" x2=\"\(width - right)\" y2=\"30\"></line>"
        for (b, t) in zip(plan, times) {
            guard let t else { continue }
            let x = Int(left + (width - left - right) * Double(t - first) / Double(last - first))
            let deferred = (b["deferred_rows"]?.text.flatMap { Int($0) } ?? 0) > 0
            svg += "<circle cx=\"\(x)\" cy=\"30\" r=\"5\" class=\"\(deferred ? "deferred" : "batch")\"></circle>"
            if plan.count <= 30 { svg += "<text x=\"\(x)\" y=\"18\" text-anchor=\"middle\">\(b["batch"]?.text ?? "")</text>" }
        }
        svg += "<text x=\"\(Int(left))\" y=\"52\" text-anchor=\"start\">\(Self.esc(UTCTime.iso(first)))</text>"
        svg += "<text x=\"\(Int(width - right))\" y=\"52\" text-anchor=\"end\">\(Self.esc(UTCTime.iso(last)))</text>"
        svg += "<circle cx=\"\(Int(left) + 4)\" cy=\"69\" r=\"4\" class=\"batch\"></circle><text x=\"\(Int(left) + 12)\" y=\"73\">batch\(plan.count <= 30 ? " (number above)" : "")</text>"
        if plan.contains(where: { ($0["deferred_rows"]?.text.flatMap { Int($0) } ?? 0) > 0 }) {
            svg += "<circle cx=\"\(Int(left) + 164)\" cy=\"69\" r=\"4\" class=\"deferred\"></circle><text x=\"\(Int(left) + 172)\" y=\"73\">holds promotional rows deferred to the promo window</text>"
        }
        return svg + "</svg>"
    }

    func bytes(_ n: Int) -> String {
        if n >= 1 << 20 { return String(format: "%.1f MB", Double(n) / Double(1 << 20)) + " (\(number(n)) bytes)" }
        return "\(number(n)) bytes"
    }

    func number(_ n: Int) -> String { locale.grouped(n) }

    /// Bytes in the largest unit that keeps them at least 1 (binary units, as the limits are).
    func shortBytes(_ n: Int) -> String {
        if n >= 1 << 20 { return String(format: "%.1f MB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KB", Double(n) / Double(1 << 10)) }
        return "\(number(n)) bytes"
    }

    static func esc(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static let css = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;max-width:760px;margin:24px auto;padding:0 16px}
        h1{font-size:22px;margin:0}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}h3{font-size:14px}
        header{display:flex;justify-content:space-between;align-items:center}
        .status{padding:2px 10px;border-radius:10px;background:#e7ecf3;font-weight:600}
        .status.completed{background:#d9f2e3}.status.partial,.status.interrupted{background:#fdf0d5}.status.failed,.status.rejected{background:#fbdcdc}
        table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
        td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}th.n{text-align:right}.facts th{width:110px;color:#5a6478;font-weight:500}
        svg{width:100%;height:auto;font-size:12px}svg rect{fill:#3b6fd8}svg.rejects rect{fill:#d8643b}svg.delivery rect{fill:#2f9e6b}
        svg line{stroke:#9aa5b8;stroke-width:2}svg circle.batch{fill:#3b6fd8}svg circle.deferred{fill:#d8a03b}
        svg.meter{width:200px;height:10px;vertical-align:middle}svg.meter rect.track{fill:#eef1f5}svg.meter rect.ok{fill:#2f9e6b}
        svg.meter rect.near{fill:#d8a03b}svg.meter rect.over{fill:#d8643b}td.meter{width:210px}
        tr.deferred td{background:#fdf6e7}td.time{white-space:nowrap}table.batches{font-size:12.5px}table.batches th,table.batches td{padding:3px 5px}
        code{font-size:12px}footer{margin-top:32px;color:#8a93a5;font-size:12px}
        @media print{@page{size:A4;margin:14mm}body{margin:0;max-width:none}section{break-inside:avoid}}
        """
}
