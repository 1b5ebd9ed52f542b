import Foundation

/// Writes what the ledger knows of a job's delivery reports into its result files (SPEC §11):
/// the batch files' `dlr_status`, `dlr_at`, `dlr_code`; summary.json's `delivery`; and
/// `delivery-failed.csv`. Each file is rewritten under a temporary name and renamed.
public enum DeliveryOutputs {
    /// When rows of `job` still without a final status stop being pulled and are reported
    /// `EXPIRED-UNKNOWN`: `stopAfter` seconds after its last batch (its scheduled time, or the
    /// job's end for batches sent at once).
    public static func deadline(job: JobRecord, plan: [BatchRecord], stopAfter: Int) -> Int64 {
        let sentAt = job.finishedAt ?? job.startedAt
        let last = plan.compactMap(\.scheduledAt).max().map { max($0, sentAt) } ?? sentAt
        return last + Int64(stopAfter)
    }

    /// Rewrites the job's outputs from the ledger. Returns the counts written, with rows
    /// still pending shown as expired when `now` is past the job's deadline; nil when the job
    /// has no output folder any more.
    @discardableResult
    public static func refresh(job: JobRecord, ledger: any Ledger, config: PipelineConfig, now: Int64) throws -> DeliveryCounts? {
        let plan = try ledger.plan(jobID: job.id)
        let expired = now >= deadline(job: job, plan: plan, stopAfter: config.dlr.stopAfter)
        if expired { _ = try ledger.expireDeliveries(jobID: job.id, at: now) }
        guard let dir = job.outputDir, FileManager.default.fileExists(atPath: dir) else { return nil }
        let counts = try ledger.deliveryCounts(jobID: job.id)
        // Final statuses never change: the same counts as last time mean the same files.
        let summaryPath = (dir as NSString).appendingPathComponent("summary.json")
        let previous = FileManager.default.contents(atPath: summaryPath).flatMap { JSONValue.parse($0) }?["delivery"]
        let current = json(counts, now: now)
        if let previous, previous["by_status"] == current["by_status"] { return counts }
        // One batch's reports in memory at a time (a batch holds at most split.batch_size rows).
        let failed = try ledger.failedDeliveries(jobID: job.id)
        var cells: DeliveryFailedFile.BatchCells = [:]
        let batches = (dir as NSString).appendingPathComponent("batches")
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: batches)) ?? []).sorted()
        where name.hasPrefix("batch-") && name.hasSuffix(".csv") {
            let number = Int(name.dropFirst(6).dropLast(4))
            let deliveries = try ledger.deliveries(jobID: job.id, batch: number)
            try rewriteBatch((batches as NSString).appendingPathComponent(name), deliveries: deliveries, expired: expired, bom: config.output.bom,
                             keep: Set(failed.keys), into: &cells)
        }
        if previous?["failed"] != current["failed"] {
            try DeliveryFailedFile.write(job: job, failed: failed, fallback: cells, config: config, dir: dir)
        }
        try writeSummary(summaryPath, counts: counts, now: now, locale: config.report.locale)
        return counts
    }

    /// summary.json's `delivery` object.
    static func json(_ counts: DeliveryCounts, now: Int64) -> JSONValue {
        let outcomes = counts.outcomes()
        let submitted = counts.total.values.reduce(0, +)
        let delivered = outcomes[.delivered] ?? 0
        let failed = (outcomes[.failed] ?? 0) + (outcomes[.failedOther] ?? 0)
        let pending = outcomes[.pending] ?? 0
        let expired = outcomes[.expired] ?? 0
        func share(_ n: Int) -> JSONValue { .double(submitted == 0 ? 0 : (Double(n) / Double(submitted) * 10_000).rounded() / 10_000) }
        return .object([
            ("by_status", .object(counts.total.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ($0.key, .int($0.value)) })),
            ("delivered", .int(delivered)),
            ("failed", .int(failed)),
            ("pending", .int(pending)),
            ("expired_unknown", .int(expired)),
            ("shares", .object([("delivered", share(delivered)), ("failed", share(failed)), ("pending", share(pending + expired))])),
            ("by_batch", .array(counts.batches.keys.sorted().map { batch in
                let o = counts.outcomes(counts.batches[batch])
                return .object([("batch", .int(batch)), ("delivered", .int(o[.delivered] ?? 0)),
                                ("failed", .int((o[.failed] ?? 0) + (o[.failedOther] ?? 0))),
                                ("pending", .int(o[.pending] ?? 0)), ("expired_unknown", .int(o[.expired] ?? 0))])
            })),
            ("updated_at", .string(UTCTime.iso(now))),
        ])
    }

    private static func writeSummary(_ path: String, counts: DeliveryCounts, now: Int64, locale: NumberLocale) throws {
        guard let data = FileManager.default.contents(atPath: path), let summary = JSONValue.parse(data) else { return }
        var file = try OutputFile(path: path)
        try file.write(summary.setting("delivery", json(counts, now: now)).rendered(indent: 2) + "\n")
        try file.commit()
        try HTMLReport.write(dir: (path as NSString).deletingLastPathComponent, locale: locale)
    }

    /// Fills the delivery columns of one batch file (added at the end when an older file
    /// has none).
    /// `keep`: rows whose cells go into `cells` (for delivery-failed.csv).
    static func rewriteBatch(_ path: String, deliveries: [Int: RowDelivery], expired: Bool, bom: Bool,
                             keep: Set<Int> = [], into cells: inout DeliveryFailedFile.BatchCells) throws(ReportError) {
        var file = try OutputFile(path: path)
        if bom { file.plain([0xEF, 0xBB, 0xBF]) }
        var columns: (row: Int, status: Int, dlr: Int)?
        var named: [String: Int] = [:]
        try CSVRecords.read(path: path) { (fields: [[UInt8]]) throws(ReportError) in
            var fields = fields
            guard let c = columns else {
                let names = fields.map { String(decoding: $0, as: UTF8.self) }
                for (i, n) in names.enumerated() { named[n] = named[n] ?? i }
                let row = names.firstIndex(of: "row") ?? 0
                let status = names.firstIndex(of: "status") ?? 4
                var dlr = names.firstIndex(of: "dlr_status") ?? -1
                if dlr < 0 {
                    dlr = fields.count
                    fields += [Array("dlr_status".utf8), Array("dlr_at".utf8), Array("dlr_code".utf8)]
                }
                columns = (row, status, dlr)
                try write(&file, fields)
                return
            }
            while fields.count < c.dlr + 3 { fields.append([]) }
            let submitted = c.status < fields.count && fields[c.status] == Array("submitted".utf8)
            if submitted, let row = Int(String(decoding: fields[c.row], as: UTF8.self)) {
                if keep.contains(row) {
                    func cell(_ name: String) -> [UInt8]? { named[name].flatMap { $0 < fields.count ? fields[$0] : nil } }
                    cells[row] = (cell("recipient") ?? [], cell("sender") ?? [], cell("product") ?? [], cell("message"), cell("scheduled_at") ?? [])
                }
                let d = deliveries[row]
                let status = d?.status ?? (expired ? DeliveryStatus.expiredUnknown : DeliveryStatus.awaiting)
                fields[c.dlr] = Array(status.utf8)
                fields[c.dlr + 1] = d?.at.map { Array(UTCTime.iso($0).utf8) } ?? []
                fields[c.dlr + 2] = Array(DeliveryStatus.outcome(of: status).rawValue.utf8)
            }
            try write(&file, fields)
        }
        try file.commit()
    }

    private static func write(_ file: inout OutputFile, _ fields: [[UInt8]]) throws(ReportError) {
        for (k, f) in fields.enumerated() {
            if k > 0 { file.comma() }
            f.withUnsafeBufferPointer { file.field($0) }
        }
        try file.endRow()
    }
}
