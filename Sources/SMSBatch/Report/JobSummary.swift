import Foundation

/// What a job did (summary.json, SPEC §7).
public struct JobSummary: Sendable {
    public typealias Status = JobStatus

    public var job = ""
    public var input = ""
    public var sha256 = ""
    public var bytes: Int64 = 0
    public var status: Status = .completed
    public var rejectReason: FileRejectReason?
    public var rejectDetail: String?
    public var rows = 0
    public var valid = 0
    public var invalid = 0
    public var invalidByReason: [ReasonCode: Int] = [:]
    public var duplicates = 0
    public var duplicatesByReason: [String: Int] = [:]
    public var parts = 0
    public var batches = 0
    public var submitted = 0
    public var failed = 0
    /// Rows of requests that went out without an answer: looked up before anything is sent again.
    public var inDoubt = 0
    /// Rows to send that no request has carried yet (or that were not sent after a stop).
    public var pending = 0
    /// Where the rows go: "built-in sandbox", the endpoint's host, or nil for a dry run.
    public var destination: String?
    public var stageMs: [String: Int] = [:]
    public var startedAt: Int64 = 0
    public var finishedAt: Int64 = 0
    public var dryRun = true
    public var kind: CampaignKind = .bulk
    public var plan: [PlanEntry] = []
    /// An estimate (see `SendEstimate`): the request rate, requests in flight and, once
    /// measured, the provider's answer time.
    public var estimatedSendSeconds = 0
    /// Seconds the provider took to answer `auth/me`, when sending (the estimate uses it).
    public var measuredLatency: Double?
    /// Promotional rows moved to the next promo-window opening, by new time.
    public var deferred: [DeferredEntry] = []
    public var warnings: [String] = []
    /// Rows to send by encoding (`gsm7`, `ucs2`; `other` for products that count no SMS
    /// parts) and by their number of SMS parts: what the campaign will cost.
    public var messagesByEncoding: [String: Int] {
        var out: [String: Int] = [:]
        for (k, name) in ["gsm7", "ucs2", "other"].enumerated() where encodingCount[k] > 0 { out[name] = encodingCount[k] }
        return out
    }
    /// Rows to send counted as gsm7, ucs2, other (an array: the hot path adds one per row).
    public var encodingCount = [0, 0, 0]
    /// `partsCount[n]`: rows to send of n SMS parts (index 0: products without parts).
    public var partsCount: [Int] = []
    /// How close the job came to each limit (report.html "Caps").
    public var caps: [CapUse] = []
    public var outputDir = ""
    /// The completed job whose content this file repeats (nothing sent).
    public var repeatOf: String?

    public struct PlanEntry: Sendable, Equatable {
        public var batch: Int
        public var part: Int
        public var rows: Int
        /// UTC seconds; nil = at once.
        public var scheduledAt: Int64?
        /// Requests the batch needs: its rows grouped by product and time, at most
        /// `nodes_per_request` a request.
        public var requests = 0
        /// Groups of one product and one time in the batch.
        public var groups = 0
        /// Promotional rows of the batch moved to a promo-window opening.
        public var deferred = 0
        /// Rows the provider accepted and rows that failed, as the ledger has them (nil: not sent).
        public var submitted: Int?
        public var failed: Int?
    }

    /// One limit and how much of it the job used: `used` in the whole job, `largestPart`
    /// in its largest part (the caps apply per part; nil where a limit has no parts).
    public struct CapUse: Sendable, Equatable {
        public var name: String
        public var limit: Int
        public var used: Int
        public var largestPart: Int?
    }

    public struct DeferredEntry: Sendable, Equatable {
        /// The opening they go at (UTC seconds).
        public var scheduledAt: Int64
        public var rows: Int
    }

    public var toSend: Int { valid - duplicates }
    public var plannedRequests: Int { plan.reduce(0) { $0 + $1.requests } }
    public var deferredRows: Int { deferred.reduce(0) { $0 + $1.rows } }

    /// Rejects the file as a whole after the plan was made: no batch goes out.
    mutating func rejectFile(_ reason: FileRejectReason, _ detail: String) {
        status = .rejected
        rejectReason = reason
        rejectDetail = detail
        batches = 0
        plan = []
        deferred = []
        estimatedSendSeconds = 0
    }

    /// Warns when promotional rows were moved out of the time they would have gone.
    mutating func noteDeferred(window: PromoWindow) {
        guard let first = deferred.first, let last = deferred.last else { return }
        func hhmm(_ m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
        let to = deferred.count == 1 ? UTCTime.iso(first.scheduledAt)
            : "\(deferred.count) openings from \(UTCTime.iso(first.scheduledAt)) to \(UTCTime.iso(last.scheduledAt))"
        warnings.append("\(grouped(deferredRows)) promotional (P) rows fall outside the promo window "
            + "\(hhmm(window.startMinute))-\(hhmm(window.endMinute)) \(window.timezone): deferred to \(to)")
    }

    /// Warns when rows' own times (or products) split batches into many more requests than
    /// `nodes_per_request` alone would: sending then takes that much longer.
    mutating func noteRequestGroups(_ send: SendConfig) {
        let perRequest = max(1, send.nodesPerRequest)
        let packed = plan.reduce(0) { $0 + ($1.rows + perRequest - 1) / perRequest }
        let groups = plan.reduce(0) { $0 + $1.groups }
        guard plannedRequests > 4 * packed else { return }
        warnings.append("rows with their own schedule_at (or product) split \(grouped(toSend)) rows into \(grouped(plannedRequests)) requests "
            + "instead of \(grouped(packed)): \(grouped(groups)) groups of one product and one time each go in requests of their own")
    }

    static let stages = ["ingest", "validate", "dedupe", "split", "send", "report"]

    public var json: JSONValue {
        let reasons = ReasonCode.allCases.compactMap { r in invalidByReason[r].map { (r.code, JSONValue.int($0)) } }
        return .object([
            ("job", .string(job)),
            ("input", .string(input)),
            ("sha256", .string(sha256)),
            ("bytes", .int(Int(bytes))),
            ("status", .string(status.rawValue)),
            ("reject_reason", rejectReason.map { .string($0.rawValue) } ?? .null),
            ("reject_detail", rejectDetail.map { .string($0) } ?? .null),
            ("rows", .int(rows)),
            ("valid", .int(valid)),
            ("invalid", .int(invalid)),
            ("invalid_by_reason", .object(reasons)),
            ("duplicates", .int(duplicates)),
            ("duplicates_by_reason", .object(duplicatesByReason.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("to_send", .int(toSend)),
            ("parts", .int(parts)),
            ("batches", .int(batches)),
            ("submitted", .int(submitted)),
            ("failed", .int(failed)),
            ("in_doubt", .int(inDoubt)),
            ("pending", .int(pending)),
            ("stage_ms", .object(JobSummary.stages.map { ($0, .int(stageMs[$0] ?? 0)) })),
            ("started_at", .string(UTCTime.iso(startedAt))),
            ("finished_at", .string(UTCTime.iso(finishedAt))),
            ("dry_run", .bool(dryRun)),
            ("kind", .string(kind.rawValue)),
            ("destination", destination.map { .string($0) } ?? .null),
            ("estimated_send_seconds", .int(estimatedSendSeconds)),
            ("measured_latency_ms", measuredLatency.map { .int(Int(($0 * 1000).rounded())) } ?? .null),
            ("requests", .int(plannedRequests)),
            ("plan", .array(plan.map { p in
                .object([
                    ("batch", .int(p.batch)), ("part", .int(p.part)), ("rows", .int(p.rows)), ("requests", .int(p.requests)),
                    ("scheduled_at", p.scheduledAt.map { .string(UTCTime.iso($0)) } ?? .null),
                    ("deferred_rows", .int(p.deferred)),
                    ("submitted", p.submitted.map { .int($0) } ?? .null),
                    ("failed", p.failed.map { .int($0) } ?? .null),
                ])
            })),
            ("deferred", .object([
                ("rows", .int(deferredRows)),
                ("to", .array(deferred.map { .object([("scheduled_at", .string(UTCTime.iso($0.scheduledAt))), ("rows", .int($0.rows))]) })),
            ])),
            ("repeat_of", repeatOf.map { .string($0) } ?? .null),
            ("messages", .object([
                ("by_encoding", .object(messagesByEncoding.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("by_parts", .object(partsCount.enumerated().filter { $0.offset > 0 && $0.element > 0 }.map { (String($0.offset), .int($0.element)) })),
                ("sms_parts", .int(partsCount.enumerated().reduce(0) { $0 + $1.offset * $1.element })),
            ])),
            ("caps", .array(caps.map { c in
                .object([("name", .string(c.name)), ("limit", .int(c.limit)), ("used", .int(c.used)),
                         ("largest_part", c.largestPart.map { .int($0) } ?? .null)])
            })),
            ("warnings", .array(warnings.map { .string($0) })),
        ])
    }
}

extension JobSummary {
    /// The summary of content a completed job already sent (SPEC §10): nothing sent; it
    /// names the job it repeats.
    static func repeatOf(_ first: String, job: String, path: String, sha: String, clock: Int64) -> JobSummary {
        var summary = JobSummary()
        summary.job = job
        summary.input = path
        summary.sha256 = sha
        summary.bytes = Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        summary.startedAt = clock
        summary.finishedAt = clock
        summary.dryRun = false
        summary.repeatOf = first
        summary.warnings.append("the same content was sent by job \(first); nothing sent (use --force to send it again)")
        return summary
    }
}

extension JobCounts {
    /// The counts a summary holds, as the ledger keeps them.
    init(_ s: JobSummary) {
        self.init(rows: s.rows, valid: s.valid, invalid: s.invalid, duplicates: s.duplicates, toSend: s.toSend,
                  submitted: s.submitted, failed: s.failed, inDoubt: s.inDoubt)
    }
}
