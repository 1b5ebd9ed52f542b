import Foundation

/// The summary a person reads on stdout: counts per reason, the plan, where the outputs are.
public enum HumanSummary {
    /// What was found and what will be sent when: shown before sending starts (SPEC §7).
    public static func plan(_ s: JobSummary, config: PipelineConfig) -> String {
        var lines: [String] = []
        lines.append("job \(s.job)  \(s.input)  (\(s.bytes) bytes)")
        if let reason = s.rejectReason {
            lines.append("  REJECTED: \(reason.rawValue): \(s.rejectDetail ?? "")")
        }
        lines.append("  rows \(s.rows): valid \(s.valid), invalid \(s.invalid), duplicates \(s.duplicates), to send \(s.toSend)")
        for r in ReasonCode.allCases {
            if let n = s.invalidByReason[r] { lines.append("    \(r.code.padding(toLength: 30, withPad: " ", startingAt: 0)) \(n)") }
        }
        for (reason, n) in s.duplicatesByReason.sorted(by: { $0.key < $1.key }) {
            lines.append("    \(("duplicate " + reason).padding(toLength: 30, withPad: " ", startingAt: 0)) \(n)")
        }
        if s.rejectReason == nil {
            lines.append("  plan: \(s.parts) part\(s.parts == 1 ? "" : "s"), \(s.batches) batch\(s.batches == 1 ? "" : "es") (\(s.kind.rawValue)), about \(duration(s.estimatedSendSeconds)) to send at \(config.send.requestsPerMinute) requests/min")
            let shown = s.plan.count <= 12 ? s.plan[...] : s.plan.prefix(10)
            for b in shown {
                lines.append("    batch \(b.batch)  part \(b.part)  \(b.rows) rows  \(b.scheduledAt.map { UTCTime.iso($0) } ?? "at once")")
            }
            if s.plan.count > 12 {
                lines.append("    … \(s.plan.count - 11) more …")
                let last = s.plan[s.plan.count - 1]
                lines.append("    batch \(last.batch)  part \(last.part)  \(last.rows) rows  \(last.scheduledAt.map { UTCTime.iso($0) } ?? "at once")")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// How the job ended and where its outputs are.
    public static func outcome(_ s: JobSummary) -> String {
        let mode = s.repeatOf != nil ? "repeat of \(s.repeatOf!), nothing sent"
            : s.dryRun ? "dry run, nothing sent" : "submitted \(s.submitted), failed \(s.failed)"
        return "  \(s.status.rawValue) (\(mode)); outputs in \(s.outputDir)"
    }

    static func duration(_ seconds: Int) -> String {
        seconds < 120 ? "\(seconds)s" : seconds < 7200 ? "\(seconds / 60)m" : "\(seconds / 3600)h\(seconds % 3600 / 60)m"
    }
}

/// Parses an ISO 8601 time with `Z` or an offset (or a local time in UTC) to UTC seconds.
public func parseISO8601(_ s: String) -> Int64? {
    var s = s
    return s.withUTF8 { ScheduleParser.parse($0, timeZone: TimeZone(identifier: "UTC")!) }
}
