import Foundation

/// One job as `smsbatch jobs` shows it: the ledger's record with counts that are live while
/// the job is unfinished, and its batches.
public struct JobView: Sendable {
    public var record: JobRecord
    /// The status to show: a job the ledger says is underway that no process holds any more
    /// was stopped by a kill or a crash: `interrupted`.
    public var status: JobStatus
    public var submitted: Int, failed: Int, inDoubt: Int
    public var pending: Int { max(0, record.toSend - submitted - failed - inDoubt) }
    public var batches: [Batch] = []
    /// Submitted rows by delivery status (SPEC §11), as the ledger has them (`EXPIRED-UNKNOWN`
    /// once a pull or refresh has recorded it past `dlr.stop_after`).
    public var delivery = DeliveryCounts()

    public struct Batch: Sendable {
        public var plan: BatchRecord
        public var sent: SendCounts
        public var delivery: [String: Int] = [:]
    }

    var delivered: Int { delivery.outcomes()[.delivered] ?? 0 }
    var deliveryFailed: Int { Self.failed(delivery.outcomes()) }
    static func failed(_ o: [DeliveryOutcome: Int]) -> Int { (o[.failed] ?? 0) + (o[.failedOther] ?? 0) }

    /// Reads the job's state from the ledger: stored counts for a finished job, counts from
    /// the recorded answers for an unfinished one; with `batches`, every batch's plan and counts.
    public static func load(_ record: JobRecord, from ledger: any Ledger, batches withBatches: Bool) throws(LedgerError) -> JobView {
        var status = record.status
        if status.isUnderway && !ledger.isHeld(record.id, outputDir: record.outputDir) { status = .interrupted }
        var view = JobView(record: record, status: status, submitted: record.submitted, failed: record.failed, inDoubt: record.inDoubt)
        guard record.repeatOf == nil else { return view }
        // Counts are live while a job runs or was stopped; a job that ended (partial, failed
        // included) keeps the counts it ended with, which also hold its rows not sent.
        let live = record.status.isUnderway || record.status == .interrupted
        var sent: [Int: SendCounts] = [:]
        if live || withBatches {
            let counts = try ledger.sendCounts(jobID: record.id)
            sent = counts.batches
            if live {
                view.submitted = counts.total.submitted
                view.failed = counts.total.failed
                view.inDoubt = counts.total.inDoubt
            }
        }
        if withBatches {
            view.delivery = try ledger.deliveryCounts(jobID: record.id)
        } else {
            // The list: final counts from the ledger's counters, the rest of the submitted
            // rows awaiting (no scan of the job's messages).
            var finals = 0
            for (batch, statuses) in try ledger.finalDeliveryCounts(jobID: record.id) {
                for (status, n) in statuses { view.delivery.add(batch: batch, status: status, count: n); finals += n }
            }
            if view.submitted > finals { view.delivery.add(batch: 0, status: DeliveryStatus.awaiting, count: view.submitted - finals) }
        }
        if withBatches {
            view.batches = try ledger.plan(jobID: record.id).map {
                Batch(plan: $0, sent: sent[$0.batch] ?? SendCounts(), delivery: view.delivery.batches[$0.batch] ?? [:])
            }
        }
        return view
    }

    var json: JSONValue {
        let j = record
        return .object([
            ("job", .string(j.id)), ("file", .string(j.fileNow ?? j.input)), ("sha256", .string(j.sha256)),
            ("status", .string(status.rawValue)), ("repeat_of", j.repeatOf.map { .string($0) } ?? .null),
            ("destination", j.destination.map { .string($0) } ?? .null),
            ("worker", j.worker.map { .string($0) } ?? .null),
            ("rows", .int(j.rows)), ("valid", .int(j.valid)), ("invalid", .int(j.invalid)), ("duplicates", .int(j.duplicates)),
            ("to_send", .int(j.toSend)), ("submitted", .int(submitted)), ("failed", .int(failed)), ("in_doubt", .int(inDoubt)),
            ("pending", .int(pending)),
            ("delivery", .object([
                ("by_status", .object(delivery.total.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("delivered", .int(delivered)), ("failed", .int(deliveryFailed)),
                ("pending", .int(delivery.outcomes()[.pending] ?? 0)), ("expired_unknown", .int(delivery.outcomes()[.expired] ?? 0)),
            ])),
            ("started_at", .string(UTCTime.iso(j.startedAt))),
            ("finished_at", j.finishedAt.map { .string(UTCTime.iso($0)) } ?? .null), ("outputs", j.outputDir.map { .string($0) } ?? .null),
            ("batches", .array(batches.map { b in
                .object([
                    ("batch", .int(b.plan.batch)), ("part", .int(b.plan.part)), ("rows", .int(b.plan.rows)),
                    ("requests_planned", .int(b.plan.requests)), ("requests", .int(b.sent.requests)),
                    ("submitted", .int(b.sent.submitted)), ("failed", .int(b.sent.failed)), ("in_doubt", .int(b.sent.inDoubt)),
                    ("scheduled_at", b.plan.scheduledAt.map { .string(UTCTime.iso($0)) } ?? .null),
                    ("deferred_rows", .int(b.plan.deferred)),
                    ("delivery", .object(b.delivery.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ])
            })),
        ])
    }
}

/// What `smsbatch jobs` prints.
public enum JobListing {
    public static func table(_ jobs: [JobView]) -> String {
        if jobs.isEmpty { return "no jobs yet" }
        // WORKER only where the ledger knows who holds a job (PostgreSQL, several hosts).
        let workers = jobs.contains { $0.record.worker != nil }
        var table = TextTable([("JOB", .left), ("STATUS", .left)] + (workers ? [("WORKER", .left)] : []) + [("ROWS", .right), ("TO_SEND", .right),
                               ("SUBMITTED", .right), ("FAILED", .right), ("IN_DOUBT", .right), ("DELIVERED", .right),
                               ("DLR_FAILED", .right), ("STARTED", .left), ("FINISHED", .left), ("FILE", .left)])
        for v in jobs {
            let j = v.record
            table.add([j.id, j.repeatOf != nil ? "repeat" : v.status.rawValue] + (workers ? [j.worker ?? "-"] : []) + [grouped(j.rows), grouped(j.toSend),
                       grouped(v.submitted), grouped(v.failed), grouped(v.inDoubt), grouped(v.delivered), grouped(v.deliveryFailed),
                       UTCTime.iso(j.startedAt),
                       j.finishedAt.map(UTCTime.iso) ?? "-", j.fileNow ?? j.input])
        }
        return table.rendered
    }

    /// One job and every batch, from the ledger.
    public static func detail(_ v: JobView) -> String {
        let j = v.record
        var status = v.status.rawValue
        if let first = j.repeatOf { status += " (repeat of \(first): nothing sent)" }
        if v.status == .interrupted { status += " (no process is running it; give the same file again to resume)" }
        var lines = [
            "job          \(j.id)", "file         \(j.fileNow ?? j.input)", "sha256       \(j.sha256)",
            "status       \(status)", "sends to     \(j.destination ?? "-")",
        ] + (j.worker.map { ["worker       \($0)"] } ?? []) + [
            "rows         \(grouped(j.rows)): valid \(grouped(j.valid)), invalid \(grouped(j.invalid)), duplicates \(grouped(j.duplicates)), to send \(grouped(j.toSend))",
            "sent         submitted \(grouped(v.submitted)), failed \(grouped(v.failed)), in doubt \(grouped(v.inDoubt)), pending \(grouped(v.pending))",
            "delivery     " + deliveryWords(v.delivery.total),
            "started      \(UTCTime.iso(j.startedAt))", "finished     \(j.finishedAt.map(UTCTime.iso) ?? "-")",
            "outputs      \(j.outputDir ?? "-")",
        ]
        if !v.batches.isEmpty {
            var table = TextTable([("BATCH", .right), ("PART", .right), ("ROWS", .right), ("REQUESTS", .right), ("PLANNED", .right),
                                   ("SUBMITTED", .right), ("FAILED", .right), ("IN_DOUBT", .right), ("DELIVERED", .right),
                                   ("DLR_FAILED", .right), ("DLR_PENDING", .right), ("SCHEDULED", .left)])
            for b in v.batches {
                let time = b.plan.scheduledAt.map(UTCTime.iso) ?? "at once"
                let o = v.delivery.outcomes(b.delivery)
                table.add([String(b.plan.batch), String(b.plan.part), grouped(b.plan.rows), grouped(b.sent.requests),
                           grouped(b.plan.requests), grouped(b.sent.submitted), grouped(b.sent.failed), grouped(b.sent.inDoubt),
                           grouped(o[.delivered] ?? 0), grouped(JobView.failed(o)), grouped((o[.pending] ?? 0) + (o[.expired] ?? 0)),
                           time + (b.plan.deferred > 0 ? " (\(grouped(b.plan.deferred)) P rows deferred to the promo window)" : "")])
            }
            lines.append("")
            lines.append(table.rendered)
        }
        return lines.joined(separator: "\n")
    }

    /// `delivered 950, failed 50 (ABSENT-SUB 30, …), pending 0`.
    static func deliveryWords(_ counts: [String: Int]) -> String {
        if counts.isEmpty { return "-" }
        var o: [DeliveryOutcome: Int] = [:]
        for (status, n) in counts { o[DeliveryStatus.outcome(of: status), default: 0] += n }
        let failures = counts.filter { DeliveryStatus.outcome(of: $0.key).isFailure }.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        var text = "delivered \(grouped(o[.delivered] ?? 0)), failed \(grouped(JobView.failed(o)))"
        if !failures.isEmpty { text += " (" + failures.map { "\($0.key) \(grouped($0.value))" }.joined(separator: ", ") + ")" }
        text += ", pending \(grouped(o[.pending] ?? 0))"
        if let e = o[.expired], e > 0 { text += ", expired-unknown \(grouped(e))" }
        return text
    }

    /// `--json`: one job, or the list.
    public static func json(_ jobs: [JobView]) -> String { JSONValue.array(jobs.map(\.json)).rendered(indent: 2) }
    public static func json(_ job: JobView) -> String { job.json.rendered(indent: 2) }
}
