import Foundation

/// The state ledger on PostgreSQL (`state.url`), shared by every worker that names it, on
/// any number of hosts. The same tables and statements as `SQLiteLedger` (`SQLLedger`), and
/// the same guarantee: an intent is committed before its request goes out, an answer with
/// its rows' states and sent-index entries in one transaction after.
///
/// What one file's locks did on one host, the server does for all of them:
/// - **Deciding** new, repeat or resume: a session advisory lock, on a connection of its own.
/// - **Holding a job**: a row in `leases` (job, worker host and pid, file, expiry on the
///   server's clock) that the worker renews every quarter lease. A worker that dies stops
///   renewing; after `state.lease` another worker takes the job and resumes it from the
///   ledger, looking up its requests in doubt first, as a restart does.
/// - **Fencing**: an intent is recorded only while this worker's lease is live, and pushes it
///   a whole lease on, so a worker that lost its lease (stalled, cut off) sends nothing more
///   once another may have taken the job over.
/// - **One rate budget per account** (`SharedRateBudget`): the last request start of every
///   worker on one token (microseconds on the server's clock), taken under a row lock.
public final class PostgresLedger: SQLLedger, Ledger, SharedRateBudget, @unchecked Sendable {
    let postgres: PostgresDatabase
    private let url: String
    private let password: String?
    /// Seconds a hold lasts unless renewed.
    let lease: Double
    /// Who holds a job, as `jobs` shows it.
    let worker: (host: String, pid: Int32)
    /// The token of each lease this process holds, by job.
    private let held = Locked<[String: String]>([:])

    static let schemaVersion = 1
    /// The advisory lock keys (any two numbers no other program on the database uses).
    private static let schemaKey: Int64 = 0x736d_7362_0001
    private static let decisionKey: Int64 = 0x736d_7362_0002
    /// Seconds since 1970 on the server's clock: every worker's leases and rate budget are
    /// judged by one clock, whatever each host's says.
    static let serverNow = "extract(epoch from clock_timestamp())"

    /// Connects to `url` and creates the schema if the database has none.
    ///
    /// - Throws: `LedgerError` when the server cannot be reached, refuses the login, or holds
    ///   a schema from a newer smsbatch.
    public init(url: String, password: String?, lease: Int = 30, reconnectFor: Double = 120,
                worker: (host: String, pid: Int32) = (ProcessInfo.processInfo.hostName, getpid())) throws(LedgerError) {
        let shown = PostgresDatabase.redacted(url)
        do {
            postgres = try PostgresDatabase(url: url, password: password, reconnectFor: reconnectFor, deadPeer: lease)
        } catch {
            throw LedgerError(path: shown, code: error.code, message: error.message)
        }
        self.url = url
        self.password = password
        self.lease = Double(lease)
        self.worker = worker
        super.init(path: shown, db: postgres, insertionOrder: "seq",
                   workerColumn: "(SELECT l.host || ' pid ' || l.pid FROM leases l WHERE l.job_id = jobs.id AND l.expires_at > \(Self.serverNow))")
        try createSchema()
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS smsbatch_schema(version INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS jobs(
            seq BIGSERIAL,
            id TEXT PRIMARY KEY,
            input TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            clock BIGINT NOT NULL,
            output_dir TEXT,
            repeat_of TEXT,
            "rows" BIGINT NOT NULL DEFAULT 0,
            valid BIGINT NOT NULL DEFAULT 0,
            invalid BIGINT NOT NULL DEFAULT 0,
            duplicates BIGINT NOT NULL DEFAULT 0,
            to_send BIGINT NOT NULL DEFAULT 0,
            submitted BIGINT NOT NULL DEFAULT 0,
            failed BIGINT NOT NULL DEFAULT 0,
            started_at BIGINT,
            finished_at BIGINT,
            updated_at BIGINT,
            file_now TEXT,
            destination TEXT,
            in_doubt BIGINT NOT NULL DEFAULT 0);
        CREATE INDEX IF NOT EXISTS jobs_sha256 ON jobs(sha256);
        CREATE TABLE IF NOT EXISTS requests(
            id BIGSERIAL PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs(id),
            batch BIGINT NOT NULL,
            "rows" BYTEA NOT NULL,
            row_count BIGINT NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            http_status BIGINT,
            results BYTEA,
            created_at BIGINT,
            answered_at BIGINT);
        CREATE INDEX IF NOT EXISTS requests_job_state ON requests(job_id, state);
        CREATE TABLE IF NOT EXISTS sent_index(
            hi BIGINT NOT NULL,
            lo BIGINT NOT NULL,
            sent_at BIGINT NOT NULL,
            job_id TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS sent_index_digest ON sent_index(hi, lo);
        CREATE INDEX IF NOT EXISTS sent_index_time ON sent_index(sent_at);
        CREATE TABLE IF NOT EXISTS batches(
            job_id TEXT NOT NULL REFERENCES jobs(id),
            batch BIGINT NOT NULL,
            part BIGINT NOT NULL,
            "rows" BIGINT NOT NULL,
            requests BIGINT NOT NULL,
            scheduled_at BIGINT,
            deferred BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY(job_id, batch));
        CREATE TABLE IF NOT EXISTS messages(
            job_id TEXT NOT NULL,
            "row" BIGINT NOT NULL,
            batch BIGINT NOT NULL,
            state TEXT NOT NULL,
            message_id TEXT,
            group_id TEXT,
            dlr_status TEXT,
            dlr_at BIGINT,
            dlr_received_at BIGINT,
            PRIMARY KEY(job_id, "row"));
        CREATE INDEX IF NOT EXISTS messages_job_batch ON messages(job_id, batch, state);
        CREATE INDEX IF NOT EXISTS messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_awaiting ON messages(job_id, "row") WHERE state = 'submitted' AND dlr_status IS NULL;
        CREATE TABLE IF NOT EXISTS delivery_counts(
            job_id TEXT NOT NULL,
            batch BIGINT NOT NULL,
            status TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY(job_id, batch, status));
        CREATE TABLE IF NOT EXISTS unmatched(
            id BIGSERIAL PRIMARY KEY,
            message_id TEXT NOT NULL,
            custom TEXT NOT NULL,
            job_id TEXT,
            "row" BIGINT,
            status TEXT NOT NULL,
            dlr_at BIGINT,
            received_at BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS leases(
            job_id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            host TEXT NOT NULL,
            pid BIGINT NOT NULL,
            file TEXT,
            expires_at DOUBLE PRECISION NOT NULL);
        CREATE TABLE IF NOT EXISTS rate_budget(
            account TEXT NOT NULL,
            kind TEXT NOT NULL,
            last_start BIGINT NOT NULL DEFAULT 0,
            paused_until BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY(account, kind));
        """

    /// Creates the tables under a transaction-scoped advisory lock, so workers starting
    /// together create them once; refuses a schema from a newer smsbatch.
    private func createSchema() throws(LedgerError) {
        let version = try wrap {
            try db.transaction { () throws(SQLError) -> Int in
                try db.execute("SELECT pg_advisory_xact_lock(?)", [.integer(Self.schemaKey)])
                try db.executeScript(Self.schema)
                if let v = try db.query("SELECT MAX(version) FROM smsbatch_schema").first?.int(0) { return v }
                try db.execute("INSERT INTO smsbatch_schema(version) VALUES(?)", [.integer(Int64(Self.schemaVersion))])
                return Self.schemaVersion
            }
        }
        if version > Self.schemaVersion {
            throw LedgerError(path: path, code: 0, message: "schema version \(version) comes from a newer smsbatch (this one knows up to \(Self.schemaVersion)); use that version or another database")
        }
    }

    /// Why the ledger at `url` cannot take a write now, nil when it can: a write of the
    /// schema version unchanged, waiting at most `timeout` seconds for a lock.
    static func writeProblem(url: String, password: String?, timeout: Double) -> String? {
        let shown = PostgresDatabase.redacted(url)
        do {
            let probe = try PostgresDatabase(url: url, password: password, reconnectFor: 0)
            defer { probe.close() }
            try probe.transaction { () throws(SQLError) in
                try probe.execute("SET LOCAL lock_timeout = \(Int(timeout * 1000))", [])
                try probe.execute("UPDATE smsbatch_schema SET version = version", [])
            }
            return nil
        } catch {
            return "\(shown): the ledger cannot be written: \(error.message)"
        }
    }

    // MARK: - Locks

    /// A session advisory lock on a connection of its own (released with it, also when the
    /// process dies); polled, so a task waiting for it never blocks a thread for long.
    public func decisionLock() async -> LedgerLock? {
        guard let connection = try? PostgresDatabase(url: url, password: password, reconnectFor: 0, deadPeer: Int(lease)) else { return nil }
        while true {
            guard let row = try? connection.query("SELECT pg_try_advisory_lock(?)", [.integer(Self.decisionKey)]).first else { return nil }
            if row.int(0) == 1 { return AdvisoryLock(connection: connection, key: Self.decisionKey) }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Takes job `id`'s lease when no live worker holds it, and the output folder's lock
    /// (two jobs of this host never write into one folder); renewed until released.
    public func holdJob(_ id: String, outputDir: String) -> LedgerLock? {
        guard let folder = FileLock.exclusive(SQLiteLedger.jobLockPath(outputDir), wait: false) else { return nil }
        let token = UUID().uuidString
        let taken = try? wrap {
            try db.transaction { () throws(SQLError) -> Bool in
                try !db.query(
                    """
                    INSERT INTO leases(job_id, token, host, pid, file, expires_at) VALUES(?, ?, ?, ?, ?, \(Self.serverNow) + ? / 1000.0)
                    ON CONFLICT(job_id) DO UPDATE SET token = excluded.token, host = excluded.host, pid = excluded.pid,
                        file = excluded.file, expires_at = excluded.expires_at
                    WHERE leases.expires_at <= \(Self.serverNow)
                    RETURNING job_id
                    """,
                    [.text(id), .text(token), .text(worker.host), .integer(Int64(worker.pid)), .text(outputDir),
                     .integer(Int64(lease * 1000))]).isEmpty
            }
        }
        guard taken == true else {
            folder.release()
            return nil
        }
        held.withLock { $0[id] = token }
        return JobLease(ledger: self, job: id, token: token, folder: folder)
    }

    /// Whether a live worker (this one or another, on any host) holds job `id`.
    public func isHeld(_ id: String, outputDir: String?) -> Bool {
        (try? wrap {
            try db.query("SELECT 1 FROM leases WHERE job_id = ? AND expires_at > \(Self.serverNow)", [.text(id)])
        }).map { !$0.isEmpty } ?? false
    }

    public func releaseJob(_ lock: LedgerLock, outputDir: String) async {
        if let lease = lock as? JobLease {
            held.withLock { _ = $0.removeValue(forKey: lease.job) }
            lease.stop()
            _ = try? wrap { try db.transaction { () throws(SQLError) in
                try db.execute("DELETE FROM leases WHERE job_id = ? AND token = ?", [.text(lease.job), .text(lease.token)])
            } }
            unlink(SQLiteLedger.jobLockPath(outputDir))
        }
        lock.release()
    }

    /// Pushes a held lease's expiry on: true when done, false when this process no longer
    /// holds it, nil when the server could not be asked (it may be back soon).
    func renew(job: String, token: String) -> Bool? {
        let changed = try? wrap {
            try db.transaction { () throws(SQLError) -> Int in
                try db.execute("UPDATE leases SET expires_at = \(Self.serverNow) + ? / 1000.0 WHERE job_id = ? AND token = ?",
                               [.integer(Int64(lease * 1000)), .text(job), .text(token)])
            }
        }
        return changed.map { $0 == 1 }
    }

    /// Fencing: an intent of a job is recorded only while this process's lease on it is live,
    /// and the same statement pushes the lease a whole `state.lease` on, so the request
    /// that follows has that long before any other worker may take the job over (a renewal
    /// thread starved of CPU, or a server back from a restart, does not end a healthy job).
    /// A lease that ran out is never revived: another worker may hold the job by then.
    override func checkIntent(jobID: String) throws(SQLError) {
        guard let token = held.withLock({ $0[jobID] }) else { return }
        let live = try db.query(
            """
            UPDATE leases SET expires_at = GREATEST(expires_at, \(Self.serverNow) + ? / 1000.0)
            WHERE job_id = ? AND token = ? AND expires_at > \(Self.serverNow) RETURNING 1
            """, [.integer(Int64(lease * 1000)), .text(jobID), .text(token)])
        if live.isEmpty {
            throw SQLError(code: 1, message: "job \(jobID): this worker's lease ran out (another worker may have taken the job over); nothing more is sent from here", sql: "")
        }
    }

    override func lockJobRow(jobID: String) throws(SQLError) {
        _ = try db.query("SELECT 1 FROM jobs WHERE id = ? FOR UPDATE", [.text(jobID)])
    }

    // MARK: - Rate budget

    /// Starts one request of `kind` on `account` if the shared budget allows it now (and
    /// returns 0), else returns the seconds to wait: starts at least `60/perMinute` s apart
    /// over every worker (a microsecond more, for the rounding), so no 60 s ever holds more
    /// than `perMinute` of them, and none while paused. One row per account and kind, so a
    /// start costs the same at 120 a minute as at 100,000.
    public func takeStart(account: String, kind: String, perMinute: Int) throws(LedgerError) -> Double {
        let spacing = Int64((60e6 / Double(perMinute)).rounded(.up)) + 1
        return try wrap {
            try db.transaction { () throws(SQLError) -> Double in
                try db.execute("INSERT INTO rate_budget(account, kind) VALUES(?, ?) ON CONFLICT DO NOTHING", [.text(account), .text(kind)])
                guard let budget = try db.query(
                    "SELECT last_start, paused_until, (\(Self.serverNow) * 1e6)::bigint FROM rate_budget WHERE account = ? AND kind = ? FOR UPDATE",
                    [.text(account), .text(kind)]).first,
                      let last = budget.int64(0), let paused = budget.int64(1), let now = budget.int64(2) else { return Double(spacing) / 1e6 }
                let earliest = max(paused, last + spacing)
                guard now >= earliest else { return Double(earliest - now) / 1e6 }
                try db.execute("UPDATE rate_budget SET last_start = ? WHERE account = ? AND kind = ?", [.integer(now), .text(account), .text(kind)])
                return 0
            }
        }
    }

    /// After a 429: no worker starts a request of `kind` on `account` for `seconds`.
    public func pauseStarts(account: String, kind: String, seconds: Double) throws(LedgerError) {
        try wrap {
            try db.transaction { () throws(SQLError) in
                try db.execute(
                    """
                    INSERT INTO rate_budget(account, kind, paused_until) VALUES(?, ?, (\(Self.serverNow) * 1e6)::bigint + ?)
                    ON CONFLICT(account, kind) DO UPDATE SET paused_until = GREATEST(rate_budget.paused_until, excluded.paused_until)
                    """, [.text(account), .text(kind), .integer(Int64(seconds * 1e6))])
            }
        }
    }
}

/// A budget of request starts shared by every worker on one account (PostgreSQL).
public protocol SharedRateBudget: AnyObject, Sendable {
    /// 0 when a request may start now (and counts it), else the seconds to wait.
    func takeStart(account: String, kind: String, perMinute: Int) throws(LedgerError) -> Double
    /// No start for `seconds` (a 429's Retry-After), for every worker.
    func pauseStarts(account: String, kind: String, seconds: Double) throws(LedgerError)
}

/// A session advisory lock held on its own connection; closing the connection releases it.
final class AdvisoryLock: LedgerLock, @unchecked Sendable {
    private let connection: PostgresDatabase
    private let key: Int64
    init(connection: PostgresDatabase, key: Int64) { (self.connection, self.key) = (connection, key) }
    func release() {
        _ = try? connection.query("SELECT pg_advisory_unlock(?)", [.integer(key)])
        connection.close()
    }
}

/// A job's lease, renewed on a thread of its own every quarter lease until released; the
/// output folder's lock is held alongside.
final class JobLease: LedgerLock, @unchecked Sendable {
    let job: String
    let token: String
    private let folder: LedgerLock
    private let stopped = Locked(false)

    init(ledger: PostgresLedger, job: String, token: String, folder: LedgerLock) {
        (self.job, self.token, self.folder) = (job, token, folder)
        let every = ledger.lease / 4
        let thread = Thread { [weak ledger, stopped] in
            var next = Date().addingTimeInterval(every)
            while !stopped.withLock({ $0 }) {
                if Date() < next { usleep(50_000); continue }
                guard let ledger else { return }
                switch ledger.renew(job: job, token: token) {
                case true?: next = Date().addingTimeInterval(every)
                case false?: return  // taken over: checkIntent refuses this job's next send
                case nil: next = Date().addingTimeInterval(0.5)
                }
            }
        }
        thread.name = "smsbatch lease \(job)"
        thread.start()
    }

    func stop() { stopped.withLock { $0 = true } }

    /// A lease nobody holds any more stops being renewed (and runs out on the server).
    deinit { stop() }

    func release() {
        stop()
        folder.release()
    }
}
