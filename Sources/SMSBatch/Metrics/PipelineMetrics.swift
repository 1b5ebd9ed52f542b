import CoreMetrics
import Foundation
import Synchronization

/// What a run counts for a monitoring stack (README "Metrics"), through swift-metrics: the
/// command line hands in a Prometheus factory (`watch --metrics`, `--metrics-file`), tests a
/// recording one, and everything else the no-op one. Labels only ever hold a fixed set of
/// values (outcomes, reason codes, HTTP status codes): never row data or a phone number.
public final class PipelineMetrics: Sendable {
    /// Counts nothing.
    public static let none = PipelineMetrics(factory: NOOPMetricsHandler.instance)

    let factory: any MetricsFactory & Sendable
    /// Files taken from inbox/ (`drain`, `watch`).
    let filesClaimed: Counter
    /// Jobs stopped by a signal (or unconfirmed requests): they resume, and count as
    /// finished when they end.
    let filesInterrupted: Counter
    /// Rows waiting to be sent in the job now sending (0 between jobs).
    let rowsPending: Gauge
    /// Files waiting in inbox/.
    let inboxFiles: Gauge
    /// Send attempts after the first for the same rows.
    let retries: Counter
    /// Seconds sends were held back by the provider's 429 answers (Retry-After).
    let rateLimitWait: FloatingPointCounter
    /// Lookups of requests that went out without an answer (`sms/status` by custom id).
    let inDoubtLookups: Counter
    /// Seconds from a send request's start to its answer.
    let sendDuration: CoreMetrics.Timer
    /// Seconds a ledger write transaction took, BEGIN IMMEDIATE (lock wait included) to COMMIT.
    let ledgerCommitDuration: CoreMetrics.Timer
    private let labeled = Locked<[String: Counter]>([:])
    private let inboxCount = Locked<(@Sendable () -> Int)?>(nil)
    /// Rows already counted per job (a job resumed in this process adds only what changed).
    private let countedRows = Locked<[String: [RowOutcome: Int]]>([:])
    /// Monotonic nanoseconds of the last sign of life of the watcher loop or its job.
    private let lastBeat = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    private let watching = Atomic<Bool>(false)

    public init(factory: any MetricsFactory & Sendable) {
        self.factory = factory
        filesClaimed = Counter(label: "smsbatch_files_claimed_total", factory: factory)
        filesInterrupted = Counter(label: "smsbatch_files_interrupted_total", factory: factory)
        rowsPending = Gauge(label: "smsbatch_job_rows_pending", factory: factory)
        inboxFiles = Gauge(label: "smsbatch_inbox_files", factory: factory)
        retries = Counter(label: "smsbatch_send_retries_total", factory: factory)
        rateLimitWait = FloatingPointCounter(label: "smsbatch_rate_limited_wait_seconds_total", factory: factory)
        inDoubtLookups = Counter(label: "smsbatch_in_doubt_lookups_total", factory: factory)
        sendDuration = CoreMetrics.Timer(label: "smsbatch_send_request_duration_seconds", factory: factory)
        ledgerCommitDuration = CoreMetrics.Timer(label: "smsbatch_ledger_commit_duration_seconds", factory: factory)
        // The series of fixed label sets exist from the start, at 0 (request counts by HTTP
        // status appear with the first request of that status).
        for outcome in FileOutcome.allCases { _ = counter("smsbatch_files_finished_total", ("outcome", outcome.rawValue)) }
        for outcome in RowOutcome.allCases { _ = counter("smsbatch_rows_total", ("outcome", outcome.rawValue)) }
        for reason in ReasonCode.allCases { _ = counter("smsbatch_rejected_rows_total", ("reason", reason.code)) }
        for kind in ["in_file", "repeat_within_window"] { _ = counter("smsbatch_duplicate_rows_total", ("kind", kind)) }
    }

    /// What each metric means (the exposition's `# HELP` lines; the README's table).
    public static let help: [String: String] = [
        "smsbatch_files_claimed_total": "Files taken from inbox/ to be run as jobs.",
        "smsbatch_files_finished_total": "Files whose job ended, by where they went: done, repeat (of a completed job; nothing sent) or failed.",
        "smsbatch_files_interrupted_total": "Jobs stopped by a signal or by unconfirmed requests; they resume and count as finished when they end.",
        "smsbatch_rows_total": "Rows of finished jobs by the one place each went: rejected, duplicate, submitted, failed, in_doubt, not_sent.",
        "smsbatch_rejected_rows_total": "Rejected rows by reason code (rejects.csv).",
        "smsbatch_duplicate_rows_total": "Duplicate rows by kind (duplicates.csv).",
        "smsbatch_send_requests_total": "Send requests (POST sms/send/json) by HTTP status; no_answer when none came.",
        "smsbatch_lookup_requests_total": "Lookups (GET auth/me, sms/status) by HTTP status; no_answer when none came.",
        "smsbatch_send_retries_total": "Send attempts after the first for the same rows.",
        "smsbatch_rate_limited_wait_seconds_total": "Seconds requests were held back by the provider's 429 answers.",
        "smsbatch_in_doubt_lookups_total": "Sends without an answer looked up at the provider before anything was sent again.",
        "smsbatch_send_request_duration_seconds": "Seconds from a send request's start to its answer.",
        "smsbatch_ledger_commit_duration_seconds": "Seconds of each ledger write transaction, lock wait and fsync included.",
        "smsbatch_inbox_files": "Files waiting in inbox/.",
        "smsbatch_job_rows_pending": "Rows of the job now sending that no answer has settled yet (0 between jobs).",
    ]

    /// The counter of `name` with one label, made on first use.
    func counter(_ name: String, _ label: (String, String)) -> Counter {
        let key = "\(name){\(label.0)=\(label.1)}"
        return labeled.withLock { made in
            if let c = made[key] { return c }
            let c = Counter(label: name, dimensions: [label], factory: factory)
            made[key] = c
            return c
        }
    }

    // MARK: - Files and rows

    /// Where a file ended: in done/ (or, for `run`, exit 0), as a repeat of a completed job,
    /// or in failed/.
    enum FileOutcome: String, CaseIterable { case done, repeatOf = "repeat", failed }

    /// The one place each row of a finished job went (they add up to the rows read).
    enum RowOutcome: String, CaseIterable {
        case rejected, duplicate, submitted, failed, inDoubt = "in_doubt", notSent = "not_sent"
    }

    /// A job that ended (not stopped): where the file went, its rows by outcome, rejects by
    /// reason and duplicates by kind. An interrupted job counts when it ends for good. A job
    /// that ends again in this process (a partial job's file dropped again) adds only what
    /// grew: rows newly submitted, say; a row that failed and was submitted later then counts
    /// under both, as the two events it was.
    func jobEnded(_ s: JobSummary, fileFailed: Bool) {
        rowsPending.record(0)
        if s.status == .interrupted {
            filesInterrupted.increment()
            return
        }
        let outcome: FileOutcome = fileFailed ? .failed : s.repeatOf != nil ? .repeatOf : .done
        counter("smsbatch_files_finished_total", ("outcome", outcome.rawValue)).increment()
        guard s.repeatOf == nil else { return }  // a repeat reads no row
        let sent = s.submitted + s.failed + s.inDoubt
        let now: [RowOutcome: Int] = [
            .rejected: s.invalid, .duplicate: s.duplicates, .submitted: s.submitted, .failed: s.failed,
            .inDoubt: s.inDoubt, .notSent: max(0, s.rows - s.invalid - s.duplicates - sent),
        ]
        let before = countedRows.withLock { counted in
            defer { counted[s.job] = counted[s.job, default: [:]].merging(now, uniquingKeysWith: max) }
            return counted[s.job]
        }
        for (outcome, n) in now {
            let added = n - (before?[outcome] ?? 0)
            if added > 0 { counter("smsbatch_rows_total", ("outcome", outcome.rawValue)).increment(by: added) }
        }
        guard before == nil else { return }  // the same rows, read again: rejects and duplicates once
        for (reason, n) in s.invalidByReason where n > 0 { counter("smsbatch_rejected_rows_total", ("reason", reason.code)).increment(by: n) }
        for (kind, n) in s.duplicatesByReason where n > 0 { counter("smsbatch_duplicate_rows_total", ("kind", kind)).increment(by: n) }
    }

    /// A file that could not be run as a job at all (unreadable, a setting refused it).
    func fileFailed() {
        counter("smsbatch_files_finished_total", ("outcome", FileOutcome.failed.rawValue)).increment()
    }

    // MARK: - Requests

    enum RequestKind: String { case send, lookup }

    /// One request answered (`code`: the HTTP status) or not (`code` nil: `no_answer`).
    /// Sends are POSTs of messages; lookups are GETs (auth/me, sms/status).
    func request(_ kind: RequestKind, code: Int?) {
        counter("smsbatch_\(kind.rawValue)_requests_total", ("code", code.map { String($0) } ?? "no_answer")).increment()
        beat()
    }

    /// A send answered after `seconds` (or given up on).
    func sendAnswered(seconds: Double, code: Int?) {
        sendDuration.recordSeconds(seconds)
        request(.send, code: code)
    }

    /// The job now sending has `rowsLeft` rows no answer has settled (the progress line's
    /// count), and is alive.
    func sending(rowsLeft: Int) {
        rowsPending.record(rowsLeft)
        beat()
    }

    // MARK: - Gauges read when scraped

    /// Counts the files waiting in inbox/ (set by `drain` and `watch`).
    func countInbox(with count: (@Sendable () -> Int)?) { inboxCount.withLock { $0 = count } }

    /// Brings the gauges that are read rather than pushed up to date: call before exporting.
    public func refreshGauges() {
        if let count = inboxCount.withLock({ $0 }) { inboxFiles.record(count()) }
    }

    // MARK: - Liveness (`/healthz`)

    /// The watcher loop turned, or its job made progress.
    func beat() { lastBeat.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }

    func setWatching(_ on: Bool) {
        watching.store(on, ordering: .relaxed)
        if on { beat() }
    }

    /// Why the watcher loop is not alive (not running, or no sign of life for `stale`
    /// seconds), nil when it is.
    public func loopProblem(stale: Double = 300) -> String? {
        guard watching.load(ordering: .relaxed) else { return "the watcher loop is not running" }
        let age = Double(DispatchTime.now().uptimeNanoseconds &- lastBeat.load(ordering: .relaxed)) / 1e9
        return age > stale ? "the watcher loop has shown no sign of life for \(Int(age)) s" : nil
    }
}
