import Foundation

/// The summary a person reads on stdout: counts per reason, the plan, where the outputs are.
public enum HumanSummary {
    /// What was found and what will be sent when: shown before sending starts (SPEC §7).
    public static func plan(_ s: JobSummary, config: PipelineConfig) -> String {
        var lines: [String] = []
        lines.append("job \(s.job)  \(s.input)  (\(grouped(Int(s.bytes))) bytes)")
        if let reason = s.rejectReason {
            lines.append("  REJECTED: \(reason.rawValue): \(s.rejectDetail ?? "")")
        }
        lines.append("  rows \(grouped(s.rows)): valid \(grouped(s.valid)), invalid \(grouped(s.invalid)), duplicates \(grouped(s.duplicates)), to send \(grouped(s.toSend))")
        for r in ReasonCode.allCases {
            if let n = s.invalidByReason[r] { lines.append("    \(r.code.padding(toLength: 30, withPad: " ", startingAt: 0)) \(grouped(n))") }
        }
        for (reason, n) in s.duplicatesByReason.sorted(by: { $0.key < $1.key }) {
            lines.append("    \(("duplicate " + reason).padding(toLength: 30, withPad: " ", startingAt: 0)) \(grouped(n))")
        }
        guard s.rejectReason == nil else { return lines.joined(separator: "\n") }
        lines.append("  sends to: \(s.dryRun ? "nowhere (dry run)" : s.destination == "built-in sandbox" ? "the built-in sandbox: nothing leaves this machine" : s.destination ?? "-")")
        let send = config.send
        let rate = send.requestsPerMinute > 0 ? "\(grouped(send.requestsPerMinute)) requests/min" : "no rate limit"
        let answer = s.measuredLatency.map { String(format: "answers in %.2f s (auth/me)", $0) } ?? "provider answer time not measured"
        lines.append("  plan: \(s.parts) part\(s.parts == 1 ? "" : "s"), \(grouped(s.batches)) batch\(s.batches == 1 ? "" : "es") (\(s.kind.rawValue)), "
            + "\(grouped(s.plannedRequests)) request\(s.plannedRequests == 1 ? "" : "s"); "
            + "about \(duration(s.estimatedSendSeconds)) to send (estimate at \(rate), \(send.concurrency) in flight, \(answer))")
        let groups = s.plan.reduce(0) { $0 + $1.groups }
        if groups > s.plan.count {
            lines.append("    \(grouped(groups)) groups of one product and one time: rows with their own schedule_at or product go in requests of their own")
        }
        let shown = s.plan.count <= 12 ? s.plan[...] : s.plan.prefix(10)
        for b in shown { lines.append(batchLine(b)) }
        if s.plan.count > 12 {
            lines.append("    … \(s.plan.count - 11) more …")
            lines.append(batchLine(s.plan[s.plan.count - 1]))
        }
        if !s.deferred.isEmpty {
            let w = config.validate.promoWindow
            func hhmm(_ m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
            lines.append("  deferred: \(grouped(s.deferredRows)) promotional (P) rows outside the promo window \(hhmm(w.startMinute))-\(hhmm(w.endMinute)) \(w.timezone) move to its next opening:")
            for d in s.deferred.prefix(10) { lines.append("    \(grouped(d.rows)) rows to \(UTCTime.iso(d.scheduledAt))") }
            if s.deferred.count > 10 { lines.append("    … and \(s.deferred.count - 10) more openings") }
        }
        return lines.joined(separator: "\n")
    }

    private static func batchLine(_ b: JobSummary.PlanEntry) -> String {
        "    batch \(b.batch)  part \(b.part)  \(grouped(b.rows)) rows  \(grouped(b.requests)) request\(b.requests == 1 ? "" : "s")  "
            + (b.scheduledAt.map { UTCTime.iso($0) } ?? "at once")
            + (b.deferred > 0 ? "  (\(grouped(b.deferred)) P rows deferred)" : "")
    }

    /// How the job ended and where its outputs are.
    public static func outcome(_ s: JobSummary) -> String {
        if s.status == .interrupted { return "  \(stopLine(s)); outputs in \(s.outputDir)" }
        let mode = s.repeatOf != nil ? "repeat of \(s.repeatOf!), nothing sent"
            : s.dryRun ? "dry run, nothing sent"
            : "submitted \(grouped(s.submitted)), failed \(grouped(s.failed))" + (s.inDoubt > 0 ? ", in doubt \(grouped(s.inDoubt))" : "")
        return "  \(s.status.rawValue) (\(mode)); outputs in \(s.outputDir)"
    }

    /// What a stop by a signal left: counted from the ledger.
    static func stopLine(_ s: JobSummary) -> String {
        "stopped: \(grouped(s.submitted)) of \(grouped(s.toSend)) submitted, \(grouped(s.inDoubt)) in doubt; the same command resumes"
    }

    /// One line per job for drain and watch: the counts and where the outputs are.
    public static func jobLine(_ s: JobSummary) -> String {
        let head = "\(s.input): \(s.status.rawValue)" + (s.rejectReason.map { " (\($0.rawValue))" } ?? "")
        if let first = s.repeatOf { return "\(head): repeat of job \(first), nothing sent; outputs in \(s.outputDir)" }
        var counts = "\(grouped(s.rows)) rows, \(grouped(s.valid)) valid, \(grouped(s.invalid)) invalid, \(grouped(s.duplicates)) duplicates, "
        counts += s.dryRun ? "dry run" : "\(grouped(s.submitted)) submitted, \(grouped(s.failed)) failed"
        if s.inDoubt > 0 { counts += ", \(grouped(s.inDoubt)) in doubt" }
        if s.status == .interrupted { counts += "; \(stopLine(s))" }
        return "\(head): \(counts); outputs in \(s.outputDir)"
    }

    public static func duration(_ seconds: Int) -> String {
        seconds < 120 ? "\(seconds)s" : seconds < 7200 ? "\(seconds / 60)m\(seconds % 60 == 0 ? "" : "\(seconds % 60)s")" : "\(seconds / 3600)h\(seconds % 3600 / 60)m"
    }
}

/// Parses an ISO 8601 time with `Z` or an offset (or a local time in UTC) to UTC seconds.
public func parseISO8601(_ s: String) -> Int64? {
    var s = s
    return s.withUTF8 { ScheduleParser.parse($0, timeZone: TimeZone(identifier: "UTC")!) }
}

extension HumanSummary {
    /// One job's delivery in a line: `JOB  delivered 950, failed 50 (ABSENT-SUB 30, …), pending 0`.
    public static func deliveryLine(job: String, _ counts: DeliveryCounts) -> String {
        "\(job)  " + JobListing.deliveryWords(counts.total)
    }
}
