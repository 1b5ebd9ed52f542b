import Foundation

/// A job cleared to run: who it is, its clock, where its outputs go, and the hold on it.
struct JobTicket {
    /// Known in advance when sending; a dry run's comes from the hash taken while reading.
    var id: String?
    /// Known in advance when sending (the ledger needs it first); a dry run hashes alongside.
    var sha: String?
    /// The job's "now": a resumed job keeps its first run's, so its plan is the same.
    var clock: Int64
    var dir: String?
    var ledger: (any Ledger)?
    /// Held while the job runs: a second process never works on the same job.
    var lock: LedgerLock?
    /// The file's size and mtime when it was taken, before it was hashed.
    var snapshot: FileSnapshot?
    /// The ledger knew the job: earlier runs may have sent some of it.
    var resumed = false

    /// A dry run: no ledger, no lock.
    static func dryRun(clock: Int64, dir: String?) -> JobTicket { JobTicket(id: nil, sha: nil, clock: clock, dir: dir) }
}

/// Decides what content given to send is (SPEC §10), under the ledger's decision lock so two
/// processes given the same content never both start a job: new (a new job), what a completed
/// job already sent (a repeat, recorded at once), or an unfinished job's (a resume, keeping
/// its id and clock).
struct Admission {
    let ledger: any Ledger
    let outbox: String
    let force: Bool
    let now: Int64

    enum Decision {
        case run(JobTicket)
        /// Recorded in the ledger as a repeat of `of`, under `id`, with outputs in `dir`.
        case repeatOf(JobRecord, id: String, clock: Int64, dir: String)
    }

    /// - Throws: `RunError.ledger` when the ledger fails, `.busy` when another process holds
    ///   the job or the output folder.
    func admit(path: String, sha: String, snapshot: FileSnapshot?, outDir: String?) async throws(RunError) -> Decision {
        let decision = await ledger.decisionLock()
        defer { decision?.release() }
        let previous: JobRecord?
        do { previous = try ledger.latestJob(sha256: sha) } catch { throw .ledger(error) }
        if let previous, previous.status == .completed && !force {
            let (id, clock) = freshJobID(sha: sha)
            // Never over the first job's own folder (a repeat run with the same --out).
            let dir = outDir.flatMap { $0 == previous.outputDir ? nil : $0 } ?? (outbox as NSString).appendingPathComponent(id)
            do {
                try ledger.createJob(JobRecord(id: id, input: path, sha256: sha, status: .completed, clock: clock, outputDir: dir,
                                               repeatOf: previous.id, startedAt: clock, finishedAt: clock))
            } catch { throw .ledger(error) }
            return .repeatOf(previous, id: id, clock: clock, dir: dir)
        }
        if let previous, previous.status.isResumable {
            guard let dir = previous.outputDir, let lock = ledger.holdJob(previous.id, outputDir: dir) else {
                throw .busy(subject: path, problem: "job \(previous.id) for the same content is running in another process")
            }
            return .run(JobTicket(id: previous.id, sha: sha, clock: previous.clock, dir: dir, ledger: ledger, lock: lock,
                                  snapshot: snapshot, resumed: true))
        }
        let (id, clock) = freshJobID(sha: sha)
        let dir = outDir ?? (outbox as NSString).appendingPathComponent(id)
        guard let lock = ledger.holdJob(id, outputDir: dir) else {
            throw .busy(subject: dir, problem: "another process is writing a job into this folder")
        }
        do {
            try ledger.createJob(JobRecord(id: id, input: path, sha256: sha, status: .running, clock: clock, outputDir: dir, startedAt: now))
        } catch { throw .ledger(error) }
        return .run(JobTicket(id: id, sha: sha, clock: clock, dir: dir, ledger: ledger, lock: lock, snapshot: snapshot))
    }

    /// SPEC §7: `<UTC time yyyyMMdd'T'HHmmss'Z'>-<first 8 hex digits of the SHA-256>`.
    static func jobID(clock: Int64, sha: String) -> String { "\(UTCTime.compact(clock))-\(sha.prefix(8))" }

    /// A job id no job in the ledger has yet: --force (or an earlier rejected attempt) in the
    /// same second moves the clock on a second.
    private func freshJobID(sha: String) -> (id: String, clock: Int64) {
        var clock = now
        while (try? ledger.job(id: Admission.jobID(clock: clock, sha: sha))) != nil { clock += 1 }
        return (Admission.jobID(clock: clock, sha: sha), clock)
    }
}

/// Opens the ledger `state` configures: PostgreSQL at `state.url` (several hosts), else
/// SQLite at `state.path`.
public enum LedgerStore {
    /// `metrics`: where each write transaction's time is counted.
    public static func open(_ config: PipelineConfig, metrics: PipelineMetrics = .none) throws(LedgerError) -> any Ledger {
        let ledger: any Ledger & SQLLedger
        if let url = config.state.url {
            ledger = try PostgresLedger(url: url, password: ProcessInfo.processInfo.environment[config.state.passwordEnv],
                                        lease: config.state.lease)
        } else {
            ledger = try SQLiteLedger(path: config.statePath)
        }
        if metrics !== PipelineMetrics.none {
            ledger.db.onCommit = { seconds in
                metrics.ledgerCommitDuration.recordSeconds(seconds)
                metrics.beat()
            }
        }
        return ledger
    }

    /// Why the configured ledger cannot take a write now, nil when it can (`/healthz`):
    /// a write transaction of its own, on its own connection, that waits at most
    /// `timeout` seconds for the write lock. Creates nothing.
    public static func writeProblem(_ config: PipelineConfig, timeout: Double = 2) -> String? {
        if let url = config.state.url {
            return PostgresLedger.writeProblem(url: url, password: ProcessInfo.processInfo.environment[config.state.passwordEnv],
                                               timeout: timeout)
        }
        return SQLiteLedger.writeProblem(path: config.statePath, timeout: timeout)
    }
}
