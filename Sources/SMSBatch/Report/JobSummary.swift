/// What a job did (summary.json, SPEC §7).
public struct JobSummary: Sendable {
    public enum Status: String, Sendable { case completed, partial, rejected, failed }

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
    public var stageMs: [String: Int] = [:]
    public var startedAt: Int64 = 0
    public var finishedAt: Int64 = 0
    public var dryRun = true
    public var kind: CampaignKind = .bulk
    public var plan: [PlanEntry] = []
    public var estimatedSendSeconds = 0
    public var warnings: [String] = []
    public var outputDir = ""
    /// The completed job whose content this file repeats (nothing sent).
    public var repeatOf: String?

    public struct PlanEntry: Sendable, Equatable {
        public var batch: Int
        public var part: Int
        public var rows: Int
        /// UTC seconds; nil = at once.
        public var scheduledAt: Int64?
    }

    public var toSend: Int { valid - duplicates }

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
            ("stage_ms", .object(JobSummary.stages.map { ($0, .int(stageMs[$0] ?? 0)) })),
            ("started_at", .string(UTCTime.iso(startedAt))),
            ("finished_at", .string(UTCTime.iso(finishedAt))),
            ("dry_run", .bool(dryRun)),
            ("kind", .string(kind.rawValue)),
            ("estimated_send_seconds", .int(estimatedSendSeconds)),
            ("plan", .array(plan.map { p in
                .object([
                    ("batch", .int(p.batch)), ("part", .int(p.part)), ("rows", .int(p.rows)),
                    ("scheduled_at", p.scheduledAt.map { .string(UTCTime.iso($0)) } ?? .null),
                ])
            })),
            ("repeat_of", repeatOf.map { .string($0) } ?? .null),
            ("warnings", .array(warnings.map { .string($0) })),
        ])
    }
}
