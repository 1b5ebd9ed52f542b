import Foundation

/// The state ledger could not be opened, read or written (SPEC §10, `state.path`).
public struct LedgerError: Diagnosable, Equatable {
    /// The ledger file.
    public let path: String
    /// SQLite's result code, or 0 when the ledger itself refused (schema from a newer
    /// smsbatch, unknown request, corrupt stored results, folder not creatable).
    public let code: Int32
    /// SQLite's own message, or the ledger's.
    public let message: String

    public var subject: String { path }
    public var problem: String { "state ledger: \(message)" }
    public var exitStatus: ExitStatus { .ioError }
}

/// Where a job stands: in the ledger, summary.json and `smsbatch jobs`.
public enum JobStatus: String, Sendable, Equatable, CaseIterable {
    /// Reading the file (pass 1); nothing sent yet.
    case running
    /// Sending: requests are going out (or, when no process holds the job, were when it died).
    case sending
    /// Stopped by a signal (or unable to confirm earlier requests): resumes when given again.
    case interrupted
    /// Every row to send was submitted (or a dry run, or a repeat).
    case completed
    /// Some rows could not be submitted after retries; given again, only those are sent.
    case partial
    /// No row could be submitted.
    case failed
    /// The file was rejected as a whole (SPEC §5); nothing sent.
    case rejected

    /// A job that may go on when its file is given again.
    public var isResumable: Bool { [.running, .sending, .interrupted, .partial, .failed].contains(self) }
    /// A job that some process may be working on right now.
    public var isUnderway: Bool { self == .running || self == .sending }
}

/// One job as the ledger keeps it (`smsbatch jobs`, repeat detection, resume).
public struct JobRecord: Sendable, Equatable {
    public var id: String
    /// The input file's path as given.
    public var input: String
    /// SHA-256 of the input's bytes, hex.
    public var sha256: String
    public var status: JobStatus
    /// The job's "now" (UTC seconds): `--now` or the clock at its start, so a resumed job
    /// plans its batches from the same instant.
    public var clock: Int64
    public var outputDir: String?
    /// The completed job this one repeats (a file already sent), nil for a real job.
    public var repeatOf: String?
    public var rows, valid, invalid, duplicates, toSend, submitted, failed: Int
    /// Rows of requests that went out and were never answered (as of the last count).
    public var inDoubt = 0
    public var startedAt: Int64
    public var finishedAt: Int64?
    /// Where the input file is now (done/, failed/), when smsbatch moved it; else `input`.
    public var fileNow: String?
    /// Where the job sends: `built-in sandbox` or the endpoint's host (and port).
    public var destination: String?
    /// The worker holding the job now (`host pid N`), where the ledger knows (PostgreSQL).
    public var worker: String?

    public init(
        id: String, input: String, sha256: String, status: JobStatus, clock: Int64, outputDir: String? = nil,
        repeatOf: String? = nil, rows: Int = 0, valid: Int = 0, invalid: Int = 0, duplicates: Int = 0,
        toSend: Int = 0, submitted: Int = 0, failed: Int = 0, startedAt: Int64, finishedAt: Int64? = nil
    ) {
        self.id = id
        self.input = input
        self.sha256 = sha256
        self.status = status
        self.clock = clock
        self.outputDir = outputDir
        self.repeatOf = repeatOf
        self.rows = rows
        self.valid = valid
        self.invalid = invalid
        self.duplicates = duplicates
        self.toSend = toSend
        self.submitted = submitted
        self.failed = failed
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}


/// A job's counts as the ledger stores them.
public struct JobCounts: Sendable, Equatable {
    public var rows = 0, valid = 0, invalid = 0, duplicates = 0, toSend = 0, submitted = 0, failed = 0, inDoubt = 0
    public init(rows: Int = 0, valid: Int = 0, invalid: Int = 0, duplicates: Int = 0, toSend: Int = 0,
                submitted: Int = 0, failed: Int = 0, inDoubt: Int = 0) {
        (self.rows, self.valid, self.invalid, self.duplicates) = (rows, valid, invalid, duplicates)
        (self.toSend, self.submitted, self.failed, self.inDoubt) = (toSend, submitted, failed, inDoubt)
    }
}

/// One batch of a job's plan, as `smsbatch jobs JOB` shows it.
public struct BatchRecord: Sendable, Equatable {
    public var batch: Int
    public var part: Int
    public var rows: Int
    /// Requests the plan needs: rows grouped by product and time, `nodes_per_request` a request.
    public var requests: Int
    /// UTC seconds; nil = at once.
    public var scheduledAt: Int64?
    /// Promotional rows moved to the next promo-window opening.
    public var deferred: Int
    public init(batch: Int, part: Int, rows: Int, requests: Int, scheduledAt: Int64?, deferred: Int) {
        (self.batch, self.part, self.rows, self.requests, self.scheduledAt, self.deferred) = (batch, part, rows, requests, scheduledAt, deferred)
    }
}

/// What the provider has done with a job's rows so far, from the recorded answers.
public struct SendCounts: Sendable, Equatable {
    /// Requests made (every attempt counts).
    public var requests = 0
    /// Rows the provider accepted.
    public var submitted = 0
    /// Rows whose last answer was a failure (final 4xx, or retries used up).
    public var failed = 0
    /// Rows of requests that went out and have no answer: in flight now, or, when no
    /// process runs the job, in doubt until looked up.
    public var inDoubt = 0
    public init() {}

    /// The sum of several batches' counts.
    public init<S: Sequence>(sum parts: S) where S.Element == SendCounts {
        for b in parts {
            requests += b.requests
            submitted += b.submitted
            failed += b.failed
            inDoubt += b.inDoubt
        }
    }
}

/// What happened to one row of a request at the provider, as the ledger stores it.
public struct RequestOutcome: Sendable, Equatable {
    public var row: Int
    public var submitted: Bool
    public var messageId: String
    public var httpStatus: Int?
    public var errorCode: String
    public var errorMessage: String
    public var attempts: Int
    /// The request's group at the provider (`group_id` of the send answer): delivery reports
    /// are pulled by group. Kept with the row's state, not in the stored answer.
    public var groupId: String?

    public init(row: Int, submitted: Bool, messageId: String, httpStatus: Int?, errorCode: String, errorMessage: String, attempts: Int) {
        (self.row, self.submitted, self.messageId, self.httpStatus) = (row, submitted, messageId, httpStatus)
        (self.errorCode, self.errorMessage, self.attempts) = (errorCode, errorMessage, attempts)
    }
}

/// A lock or lease a ledger hands out; held until released (or the process dies).
public protocol LedgerLock: AnyObject, Sendable {
    func release()
}

/// The state ledger (SPEC §10): jobs and their plans, every request's intent and answer,
/// what became of each row, the index of sent messages behind `dedupe.window`, and the locks
/// that keep two processes off one job. `SQLiteLedger` keeps it in one file for one host;
/// `InMemoryLedger` in memory for tests; another backend is one more type conforming here.
///
/// The guarantee every implementation gives: `recordIntent` returns only once the intent is
/// durable, and `recordAnswer` commits the answer, the rows' states and the sent-index
/// entries together — so after a crash a request is answered or in doubt, never unknown.
public protocol Ledger: AnyObject, Sendable {
    /// Where the ledger is, for messages.
    var path: String { get }

    // MARK: Jobs
    func createJob(_ job: JobRecord) throws(LedgerError)
    /// Sets the status and, where given, the counts, output folder, end time and destination.
    func updateJob(id: String, status: JobStatus, counts: JobCounts?, outputDir: String?, finishedAt: Int64?,
                   destination: String?) throws(LedgerError)
    func recordFileLocation(jobID: String, path: String) throws(LedgerError)
    func job(id: String) throws(LedgerError) -> JobRecord?
    /// The newest `limit` jobs, newest first.
    func jobs(limit: Int) throws(LedgerError) -> [JobRecord]
    /// The newest real job (not a repeat) of this content.
    func latestJob(sha256: String) throws(LedgerError) -> JobRecord?

    // MARK: Plan and counts
    func recordPlan(jobID: String, _ batches: [BatchRecord]) throws(LedgerError)
    func plan(jobID: String) throws(LedgerError) -> [BatchRecord]
    /// What the provider has done with the job's rows so far, in total and per batch.
    func sendCounts(jobID: String) throws(LedgerError) -> (total: SendCounts, batches: [Int: SendCounts])

    // MARK: Requests
    /// Records a request about to go out and returns its id, once durable. `retrying`: rows
    /// whose earlier answer was a failure; they count as in flight again.
    func recordIntent(jobID: String, batch: Int, rows: [Int], retrying: [Int]) throws(LedgerError) -> Int64
    /// Records a request's answer, its rows' states and the sent digests, together.
    func recordAnswer(requestID: Int64, httpStatus: Int?, outcomes: [RequestOutcome],
                      sent: (jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64)?) throws(LedgerError)
    /// Requests that went out and were never answered, oldest first.
    func inDoubtRequests(jobID: String) throws(LedgerError) -> [(id: Int64, batch: Int, rows: [Int])]
    /// Each answered row's last outcome; a submitted row stays submitted.
    func finalOutcomes(jobID: String) throws(LedgerError) -> [Int: RequestOutcome]

    // MARK: Delivery reports (SPEC §11)
    /// Records final statuses, matched by message id, else by `custom`: a row's first final
    /// status stays (later different ones are returned as conflicts); reports for no known
    /// submitted message are kept as unmatched. Durable when it returns.
    func recordDeliveries(_ reports: [DeliveryReport], receivedAt: Int64) throws(LedgerError) -> DeliveryRecording
    /// Matches unmatched reports to messages recorded since; those matched leave the table.
    func matchUnmatched() throws(LedgerError) -> DeliveryRecording
    /// Reports kept for no known message.
    func unmatchedCount() throws(LedgerError) -> Int
    /// The job's submitted rows still without a final status, by row.
    func awaitingDelivery(jobID: String) throws(LedgerError) -> [AwaitingRow]
    /// What to ask the provider for the job's rows still without a final status: the
    /// distinct groups of their requests, and the rows whose request named no group.
    func awaitingLookups(jobID: String) throws(LedgerError) -> (groups: [String], rows: [Int])
    /// The rows of one batch (every batch when nil) with a final status, by row.
    func deliveries(jobID: String, batch: Int?) throws(LedgerError) -> [Int: RowDelivery]
    /// The job's rows whose delivery failed, by row.
    func failedDeliveries(jobID: String) throws(LedgerError) -> [Int: RowDelivery]
    /// The job's submitted rows by delivery status, in total and per batch.
    func deliveryCounts(jobID: String) throws(LedgerError) -> DeliveryCounts
    /// Final statuses only, per batch: kept as counters, so cheap for `jobs` over many jobs.
    func finalDeliveryCounts(jobID: String) throws(LedgerError) -> [Int: [String: Int]]
    /// Jobs with submitted rows still without a final status, oldest first.
    func jobsAwaitingDelivery() throws(LedgerError) -> [String]
    /// Past `dlr.stop_after`: the job's submitted rows still without a final status get
    /// `EXPIRED-UNKNOWN` as theirs (a later report is then a conflict, never a change).
    /// Returns how many.
    func expireDeliveries(jobID: String, at: Int64) throws(LedgerError) -> Int

    // MARK: Sent index
    /// Digests sent at or after `since` by jobs other than `excludingJob`.
    func sentSince(_ since: Int64, excludingJob: String) throws(LedgerError) -> [(hi: UInt64, lo: UInt64)]
    func prune(sentBefore: Int64) throws(LedgerError)

    // MARK: Locks
    /// Serialises deciding whether content is new, a repeat or a resume; nil when the
    /// ledger's place is gone.
    func decisionLock() async -> LedgerLock?
    /// Takes job `id` (outputs in `outputDir`) for this process; nil when another holds it.
    func holdJob(_ id: String, outputDir: String) -> LedgerLock?
    /// Whether some process holds job `id`.
    func isHeld(_ id: String, outputDir: String?) -> Bool
    /// Lets a held job go and tidies what holding it left behind.
    func releaseJob(_ lock: LedgerLock, outputDir: String) async
}

extension Ledger {
    public func updateJob(id: String, status: JobStatus, counts: JobCounts?, outputDir: String? = nil,
                          finishedAt: Int64? = nil) throws(LedgerError) {
        try updateJob(id: id, status: status, counts: counts, outputDir: outputDir, finishedAt: finishedAt, destination: nil)
    }

    public func jobs() throws(LedgerError) -> [JobRecord] { try jobs(limit: 1000) }

    func recordIntent(jobID: String, batch: Int, rows: [Int]) throws(LedgerError) -> Int64 {
        try recordIntent(jobID: jobID, batch: batch, rows: rows, retrying: [])
    }

    func recordAnswer(requestID: Int64, httpStatus: Int?, outcomes: [RequestOutcome]) throws(LedgerError) {
        try recordAnswer(requestID: requestID, httpStatus: httpStatus, outcomes: outcomes, sent: nil)
    }

    func sentSince(_ since: Int64) throws(LedgerError) -> [(hi: UInt64, lo: UInt64)] { try sentSince(since, excludingJob: "") }

    public func deliveries(jobID: String) throws(LedgerError) -> [Int: RowDelivery] { try deliveries(jobID: jobID, batch: nil) }
}

extension FileLock: LedgerLock {}
