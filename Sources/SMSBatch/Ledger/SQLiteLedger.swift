import Foundation

/// The state ledger (SPEC §10) in one SQLite file: jobs, every request's intent and answer,
/// and the index of sent messages behind `dedupe.window`.
///
/// Durability: WAL with `synchronous=FULL`, so each committed write (an intent above all) has
/// been fsynced before the call returns; a crash after `recordIntent` returns leaves the
/// request in doubt, never forgotten. Calls block while SQLite writes; the sender calls them
/// from its tasks, and they cost one fsync each (see `recordIntent`).
public final class SQLiteLedger: Ledger, @unchecked Sendable {
    // @unchecked: the only state is `db`, which serializes every call under its own lock.

    /// The file, for error messages.
    public let path: String
    let db: SQLiteDatabase

    /// The schema version this build writes; `migrations[v - 1]` takes a database to `v`.
    static let schemaVersion = 3
    private static let migrations: [Migration] = [
        Migration(script: migration1), Migration(script: migration2, backfill: backfillMessages), Migration(script: migration3),
    ]

    /// A schema step: its SQL, then what SQL alone cannot do (decoding stored blobs).
    struct Migration: Sendable {
        let script: String
        var backfill: (@Sendable (SQLiteDatabase) throws(SQLiteError) -> Void)? = nil
    }

    /// Opens the ledger at `path`, creating it and its parent folders if needed, and brings
    /// its schema up to date.
    ///
    /// - Throws: `LedgerError` when the folder or file cannot be created or opened, the file
    ///   is not a database, or its schema comes from a newer smsbatch.
    public init(path: String) throws(LedgerError) {
        self.path = path
        let folder = parentDirectory(of: path)
        if !folder.isEmpty && path != ":memory:" {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw LedgerError(path: path, code: 0, message: "cannot create the folder \(folder): \(error.localizedDescription)")
            }
        }
        do {
            db = try SQLiteDatabase(path: path)
        } catch {
            throw LedgerError(path: path, code: error.code, message: error.message)
        }
        try wrap {
            // WAL: readers (`smsbatch jobs`) never block the sender; FULL: a commit is on disk.
            _ = try db.query("PRAGMA journal_mode=WAL")
            try db.execute("PRAGMA synchronous=FULL")
            try db.execute("PRAGMA foreign_keys=ON")
        }
        try migrate()
    }

    /// Closes the file; later calls throw. The ledger also closes when released.
    public func close() { db.close() }

    /// Why the ledger at `path` cannot take a write now, nil when it can: opens it without
    /// creating it and rewrites its schema version unchanged in a write transaction (a real
    /// write, so a read-only file, a full disk or a held write lock all show).
    static func writeProblem(path: String, timeout: Double) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return "\(path): the ledger does not exist" }
        do {
            let probe = try SQLiteDatabase(path: path, create: false, busyTimeout: timeout)
            defer { probe.close() }
            try probe.transaction { () throws(SQLiteError) in
                let version = try probe.query("PRAGMA user_version").first?.int64(0) ?? 0
                try probe.execute("PRAGMA user_version = \(version)")
            }
            return nil
        } catch {
            return "\(path): the ledger cannot be written: \(error.message)"
        }
    }

    // MARK: - Schema

    static let migration1 = """
        CREATE TABLE jobs(
            id TEXT PRIMARY KEY,
            input TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            clock INTEGER NOT NULL,
            output_dir TEXT,
            repeat_of TEXT,
            "rows" INTEGER NOT NULL DEFAULT 0,
            valid INTEGER NOT NULL DEFAULT 0,
            invalid INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            to_send INTEGER NOT NULL DEFAULT 0,
            submitted INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            started_at INTEGER,
            finished_at INTEGER,
            updated_at INTEGER);
        CREATE INDEX jobs_sha256 ON jobs(sha256);
        CREATE TABLE requests(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs(id),
            batch INTEGER NOT NULL,
            "rows" BLOB NOT NULL,
            state TEXT NOT NULL,
            http_status INTEGER,
            results BLOB,
            created_at INTEGER,
            answered_at INTEGER);
        CREATE INDEX requests_job_state ON requests(job_id, state);
        CREATE TABLE sent_index(
            hi INTEGER NOT NULL,
            lo INTEGER NOT NULL,
            sent_at INTEGER NOT NULL,
            job_id TEXT NOT NULL);
        CREATE INDEX sent_index_digest ON sent_index(hi, lo);
        CREATE INDEX sent_index_time ON sent_index(sent_at);
        """

    /// Version 2: live counts. `messages` holds each answered row's state (and, for issue
    /// 10's delivery reports, its message id); `requests.row_count` counts an intent's rows so
    /// rows in doubt are summed without decoding; `batches` keeps the plan; jobs learn where
    /// their file is now, where they send, and their rows in doubt.
    private static let migration2 = """
        ALTER TABLE jobs ADD COLUMN file_now TEXT;
        ALTER TABLE jobs ADD COLUMN destination TEXT;
        ALTER TABLE jobs ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE requests ADD COLUMN row_count INTEGER NOT NULL DEFAULT 0;
        UPDATE requests SET row_count = length("rows") / 4;
        CREATE TABLE batches(
            job_id TEXT NOT NULL REFERENCES jobs(id),
            batch INTEGER NOT NULL,
            part INTEGER NOT NULL,
            "rows" INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            scheduled_at INTEGER,
            deferred INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(job_id, batch));
        CREATE TABLE messages(
            job_id TEXT NOT NULL,
            "row" INTEGER NOT NULL,
            batch INTEGER NOT NULL,
            state TEXT NOT NULL,
            message_id TEXT,
            PRIMARY KEY(job_id, "row")) WITHOUT ROWID;
        CREATE INDEX messages_job_batch ON messages(job_id, batch, state);
        """

    /// Version 3: delivery reports (SPEC §11). Each message keeps its request's group and its
    /// first final status; `delivery_counts` counts them per job, batch and status (so `jobs`
    /// reads a few rows, not every message); reports for no known message wait in `unmatched`.
    private static let migration3 = """
        ALTER TABLE messages ADD COLUMN group_id TEXT;
        ALTER TABLE messages ADD COLUMN dlr_status TEXT;
        ALTER TABLE messages ADD COLUMN dlr_at INTEGER;
        ALTER TABLE messages ADD COLUMN dlr_received_at INTEGER;
        CREATE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
        CREATE INDEX messages_awaiting ON messages(job_id, "row") WHERE state = 'submitted' AND dlr_status IS NULL;
        CREATE TABLE delivery_counts(
            job_id TEXT NOT NULL,
            batch INTEGER NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY(job_id, batch, status)) WITHOUT ROWID;
        CREATE TABLE unmatched(
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL,
            custom TEXT NOT NULL,
            job_id TEXT,
            "row" INTEGER,
            status TEXT NOT NULL,
            dlr_at INTEGER,
            received_at INTEGER NOT NULL);
        """

    /// Fills `messages` from the answers a version-1 ledger already holds.
    private static func backfillMessages(_ db: SQLiteDatabase) throws(SQLiteError) {
        let answered = try db.query(#"SELECT job_id, batch, results FROM requests WHERE state = 'answered' ORDER BY id"#)
        for r in answered {
            guard let outcomes = OutcomeCodec.decode(r.data(2) ?? Data()) else { continue }
            try upsertMessagesV2(db, jobID: r.string(0) ?? "", batch: r.int(1) ?? 0, outcomes)
        }
        // A failed row sent again by a request still unanswered is in doubt, not failed.
        let unanswered = try db.query(#"SELECT job_id, "rows" FROM requests WHERE state = 'intent'"#)
        for r in unanswered {
            for row in RowListCodec.decode(r.data(1) ?? Data()) ?? [] {
                try db.execute(#"UPDATE messages SET state = 'in_flight' WHERE job_id = ? AND "row" = ? AND state = 'failed'"#,
                               [.text(r.string(0) ?? ""), .integer(Int64(row))])
            }
        }
    }

    /// Applies the missing migrations, each in its own transaction with its `user_version`.
    /// The version is read inside the write transaction, so two processes opening a new
    /// file at once migrate it once.
    private func migrate() throws(LedgerError) {
        let latest = Self.schemaVersion
        var version = 0
        repeat {
            version = try wrap { () throws(SQLiteError) -> Int in
                try db.transaction { () throws(SQLiteError) -> Int in
                    let current = Int(try db.query("PRAGMA user_version").first?.int64(0) ?? 0)
                    guard current < latest else { return current }
                    try db.executeScript(Self.migrations[current].script)
                    try Self.migrations[current].backfill?(db)
                    try db.execute("PRAGMA user_version = \(current + 1)")
                    return current + 1
                }
            }
        } while version < latest
        if version > latest {
            throw LedgerError(
                path: path, code: 0,
                message: "schema version \(version) comes from a newer smsbatch (this one knows up to \(latest)); use that version or another state.path")
        }
    }

    // MARK: - Jobs

    private static let jobColumns = """
        id, input, sha256, status, clock, output_dir, repeat_of, "rows", valid, invalid, duplicates, \
        to_send, submitted, failed, started_at, finished_at, in_doubt, file_now, destination
        """

    /// Records a new job.
    ///
    /// - Throws: `LedgerError` (SQLITE_CONSTRAINT) when a job with this id exists.
    public func createJob(_ j: JobRecord) throws(LedgerError) {
        try wrap {
            try db.transaction { () throws(SQLiteError) in try db.execute(
                "INSERT INTO jobs(\(Self.jobColumns), updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [.text(j.id), .text(j.input), .text(j.sha256), .text(j.status.rawValue), .integer(j.clock),
                 j.outputDir.map { .text($0) } ?? .null, j.repeatOf.map { .text($0) } ?? .null,
                 .integer(Int64(j.rows)), .integer(Int64(j.valid)), .integer(Int64(j.invalid)),
                 .integer(Int64(j.duplicates)), .integer(Int64(j.toSend)), .integer(Int64(j.submitted)),
                 .integer(Int64(j.failed)), .integer(j.startedAt), j.finishedAt.map { .integer($0) } ?? .null,
                 .integer(Int64(j.inDoubt)), j.fileNow.map { .text($0) } ?? .null, j.destination.map { .text($0) } ?? .null,
                 .integer(Self.wallClock())]) }
        }
    }


    /// Sets a job's status and, where given, its counts, output folder and end time; a nil
    /// argument leaves that field as it is.
    ///
    /// - Throws: `LedgerError` (code 0) when there is no job `id`.
    public func updateJob(id: String, status: JobStatus, counts: JobCounts?, outputDir: String?,
                          finishedAt: Int64?, destination: String?) throws(LedgerError) {
        var sets = ["status = ?", "updated_at = ?"]
        var values: [SQLiteValue] = [.text(status.rawValue), .integer(Self.wallClock())]
        if let c = counts {
            sets.append(#""rows" = ?, valid = ?, invalid = ?, duplicates = ?, to_send = ?, submitted = ?, failed = ?, in_doubt = ?"#)
            values += [c.rows, c.valid, c.invalid, c.duplicates, c.toSend, c.submitted, c.failed, c.inDoubt].map { .integer(Int64($0)) }
        }
        if let outputDir { sets.append("output_dir = ?"); values.append(.text(outputDir)) }
        if let finishedAt { sets.append("finished_at = ?"); values.append(.integer(finishedAt)) }
        if let destination { sets.append("destination = ?"); values.append(.text(destination)) }
        values.append(.text(id))
        let changed = try wrap { try db.transaction { () throws(SQLiteError) in try db.execute("UPDATE jobs SET \(sets.joined(separator: ", ")) WHERE id = ?", values) } }
        if changed == 0 { throw LedgerError(path: path, code: 0, message: "no job \(id)") }
    }

    /// Records where the job's input file went (done/ or failed/).
    public func recordFileLocation(jobID: String, path file: String) throws(LedgerError) {
        try wrap { try db.transaction { () throws(SQLiteError) in try db.execute("UPDATE jobs SET file_now = ?, updated_at = ? WHERE id = ?", [.text(file), .integer(Self.wallClock()), .text(jobID)]) } }
    }

    /// The job with this id, nil when there is none.
    public func job(id: String) throws(LedgerError) -> JobRecord? {
        try wrap { try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.text(id)]) }.first.map(Self.jobRecord)
    }

    /// The newest `limit` jobs, newest first.
    public func jobs(limit: Int) throws(LedgerError) -> [JobRecord] {
        try wrap {
            try db.query("SELECT \(Self.jobColumns) FROM jobs ORDER BY started_at DESC, rowid DESC LIMIT ?", [.integer(Int64(limit))])
        }.map(Self.jobRecord)
    }

    /// The newest real job (not a recorded repeat) of the file with this SHA-256, nil when
    /// the content was never seen: what repeat detection and resume look at.
    public func latestJob(sha256: String) throws(LedgerError) -> JobRecord? {
        try wrap {
            try db.query(
                "SELECT \(Self.jobColumns) FROM jobs WHERE sha256 = ? AND repeat_of IS NULL ORDER BY started_at DESC, rowid DESC LIMIT 1",
                [.text(sha256)])
        }.first.map(Self.jobRecord)
    }

    private static func jobRecord(_ r: SQLiteRow) -> JobRecord {
        var j = JobRecord(
            id: r.string(0) ?? "", input: r.string(1) ?? "", sha256: r.string(2) ?? "",
            status: JobStatus(rawValue: r.string(3) ?? "") ?? .failed,
            clock: r.int64(4) ?? 0, outputDir: r.string(5), repeatOf: r.string(6), rows: r.int(7) ?? 0,
            valid: r.int(8) ?? 0, invalid: r.int(9) ?? 0, duplicates: r.int(10) ?? 0, toSend: r.int(11) ?? 0,
            submitted: r.int(12) ?? 0, failed: r.int(13) ?? 0, startedAt: r.int64(14) ?? 0, finishedAt: r.int64(15))
        j.inDoubt = r.int(16) ?? 0
        j.fileNow = r.string(17)
        j.destination = r.string(18)
        return j
    }

    // MARK: - Plan and live counts


    /// Records a job's plan, replacing the one an earlier run of the job recorded.
    public func recordPlan(jobID: String, _ batches: [BatchRecord]) throws(LedgerError) {
        try wrap {
            try db.transaction { () throws(SQLiteError) in
                try db.execute("DELETE FROM batches WHERE job_id = ?", [.text(jobID)])
                for b in batches {
                    try db.execute(
                        #"INSERT INTO batches(job_id, batch, part, "rows", requests, scheduled_at, deferred) VALUES(?,?,?,?,?,?,?)"#,
                        [.text(jobID), .integer(Int64(b.batch)), .integer(Int64(b.part)), .integer(Int64(b.rows)),
                         .integer(Int64(b.requests)), b.scheduledAt.map { .integer($0) } ?? .null, .integer(Int64(b.deferred))])
                }
            }
        }
    }

    /// The job's plan, batch by batch.
    public func plan(jobID: String) throws(LedgerError) -> [BatchRecord] {
        try wrap {
            try db.query(#"SELECT batch, part, "rows", requests, scheduled_at, deferred FROM batches WHERE job_id = ? ORDER BY batch"#, [.text(jobID)])
        }.map { r in
            BatchRecord(batch: r.int(0) ?? 0, part: r.int(1) ?? 0, rows: r.int(2) ?? 0, requests: r.int(3) ?? 0,
                         scheduledAt: r.int64(4), deferred: r.int(5) ?? 0)
        }
    }


    /// Live counts of a job, in total and per batch.
    public func sendCounts(jobID: String) throws(LedgerError) -> (total: SendCounts, batches: [Int: SendCounts]) {
        var batches: [Int: SendCounts] = [:]
        // One snapshot: an answer committed between the two queries would count its rows
        // both in doubt and answered, or neither.
        let (states, requests) = try wrap {
            try db.snapshot { () throws(SQLiteError) -> ([SQLiteRow], [SQLiteRow]) in
                (try db.query(
                    #"SELECT batch, state, COUNT(*) FROM messages WHERE job_id = ? AND state IN ('submitted', 'failed') GROUP BY batch, state"#,
                    [.text(jobID)]),
                 try db.query(
                    "SELECT batch, COUNT(*), SUM(CASE WHEN state = 'intent' THEN row_count ELSE 0 END) FROM requests WHERE job_id = ? GROUP BY batch",
                    [.text(jobID)]))
            }
        }
        for r in states {
            let batch = r.int(0) ?? 0, n = r.int(2) ?? 0
            if r.string(1) == "submitted" { batches[batch, default: SendCounts()].submitted += n } else { batches[batch, default: SendCounts()].failed += n }
        }
        for r in requests {
            let batch = r.int(0) ?? 0
            batches[batch, default: SendCounts()].requests += r.int(1) ?? 0
            batches[batch, default: SendCounts()].inDoubt += r.int(2) ?? 0
        }
        return (SendCounts(sum: batches.values), batches)
    }

    // MARK: - Requests

    /// Records that a request for these rows of `batch` is about to go out, and returns its
    /// id. Call it before sending: it returns once the intent is committed and fsynced (one
    /// statement, one transaction), so after a crash the rows are in doubt, never unknown.
    /// `retrying`: rows of the request whose earlier answer was a failure; they count as in
    /// flight again, not as failed, until this request is answered.
    ///
    /// - Throws: `LedgerError` (SQLITE_CONSTRAINT) when the job is not in the ledger.
    public func recordIntent(jobID: String, batch: Int, rows: [Int], retrying: [Int]) throws(LedgerError) -> Int64 {
        let insert = #"INSERT INTO requests(job_id, batch, "rows", row_count, state, created_at) VALUES(?, ?, ?, ?, 'intent', ?) RETURNING id"#
        let values: [SQLiteValue] = [.text(jobID), .integer(Int64(batch)), .blob(RowListCodec.encode(rows)), .integer(Int64(rows.count)),
                                     .integer(Self.wallClock())]
        let id = try wrap { () throws(SQLiteError) -> Int64? in
            try db.transaction { () throws(SQLiteError) -> Int64? in
                for row in retrying {
                    try db.execute(#"UPDATE messages SET state = 'in_flight' WHERE job_id = ? AND "row" = ? AND state = 'failed'"#,
                                   [.text(jobID), .integer(Int64(row))])
                }
                return try db.query(insert, values).first?.int64(0)
            }
        }
        guard let id else { throw LedgerError(path: path, code: 0, message: "no id for the request of job \(jobID)") }
        return id
    }

    /// Records the answer to request `requestID` (its state becomes `answered`): the final
    /// HTTP status (nil when none came) and what happened to each row.
    ///
    /// - Throws: `LedgerError` (code 0) when there is no such request.
    public func recordAnswer(requestID: Int64, httpStatus: Int?, outcomes: [RequestOutcome],
                             sent: (jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64)?) throws(LedgerError) {
        // The answer and the sent-index entries of its accepted rows commit together.
        let changed = try wrap {
            try db.transaction { () throws(SQLiteError) -> Int in
                let changed = try db.execute(
                    "UPDATE requests SET state = 'answered', http_status = ?, results = ?, answered_at = ? WHERE id = ?",
                    [httpStatus.map { .integer(Int64($0)) } ?? .null, .blob(OutcomeCodec.encode(outcomes)),
                     .integer(Self.wallClock()), .integer(requestID)])
                if changed > 0 && !outcomes.isEmpty, let request = try db.query("SELECT job_id, batch FROM requests WHERE id = ?", [.integer(requestID)]).first {
                    try Self.upsertMessages(db, jobID: request.string(0) ?? "", batch: request.int(1) ?? 0, outcomes)
                }
                if let sent {
                    for d in sent.digests {
                        try db.execute(
                            "INSERT INTO sent_index(hi, lo, sent_at, job_id) VALUES(?, ?, ?, ?)",
                            [.integer(Int64(bitPattern: d.hi)), .integer(Int64(bitPattern: d.lo)), .integer(sent.at), .text(sent.jobID)])
                    }
                }
                return changed
            }
        }
        if changed == 0 { throw LedgerError(path: path, code: 0, message: "no request \(requestID)") }
    }

    /// Each row's latest state in `messages`; a submitted row stays submitted (a later failure
    /// of a re-send cannot undo an accepted message).
    static func upsertMessages(_ db: SQLiteDatabase, jobID: String, batch: Int, _ outcomes: [RequestOutcome]) throws(SQLiteError) {
        for o in outcomes {
            try db.execute(
                #"""
                INSERT INTO messages(job_id, "row", batch, state, message_id, group_id) VALUES(?, ?, ?, ?, ?, ?)
                ON CONFLICT(job_id, "row") DO UPDATE SET state = excluded.state, message_id = excluded.message_id,
                    group_id = excluded.group_id
                WHERE messages.state <> 'submitted'
                """#,
                [.text(jobID), .integer(Int64(o.row)), .integer(Int64(batch)), .text(o.submitted ? "submitted" : "failed"),
                 o.messageId.isEmpty ? .null : .text(o.messageId), o.groupId.map { .text($0) } ?? .null])
        }
    }

    /// `upsertMessages` for the version-2 migration's backfill, before `group_id` exists.
    private static func upsertMessagesV2(_ db: SQLiteDatabase, jobID: String, batch: Int, _ outcomes: [RequestOutcome]) throws(SQLiteError) {
        for o in outcomes {
            try db.execute(
                #"""
                INSERT INTO messages(job_id, "row", batch, state, message_id) VALUES(?, ?, ?, ?, ?)
                ON CONFLICT(job_id, "row") DO UPDATE SET state = excluded.state, message_id = excluded.message_id
                WHERE messages.state <> 'submitted'
                """#,
                [.text(jobID), .integer(Int64(o.row)), .integer(Int64(batch)), .text(o.submitted ? "submitted" : "failed"),
                 o.messageId.isEmpty ? .null : .text(o.messageId)])
        }
    }

    /// The job's requests that went out (or were about to) and were never answered, oldest
    /// first: their rows must be looked up at the provider before anything is sent again.
    public func inDoubtRequests(jobID: String) throws(LedgerError) -> [(id: Int64, batch: Int, rows: [Int])] {
        let found = try wrap {
            try db.query(#"SELECT id, batch, "rows" FROM requests WHERE job_id = ? AND state = 'intent' ORDER BY id"#, [.text(jobID)])
        }
        return try found.map { r throws(LedgerError) in
            let id = r.int64(0) ?? 0
            guard let rows = RowListCodec.decode(r.data(2) ?? Data()) else { throw corrupt(id) }
            return (id: id, batch: r.int(1) ?? 0, rows: rows)
        }
    }

    /// What finally happened to each row of the job that has an answer, by row number.
    /// Answers are merged in request order, a later one replacing an earlier one for the same
    /// row, except that a row submitted in any answer stays submitted (a later failure of a
    /// re-send cannot undo an accepted message).
    public func finalOutcomes(jobID: String) throws(LedgerError) -> [Int: RequestOutcome] {
        let found = try wrap {
            try db.query("SELECT id, results FROM requests WHERE job_id = ? AND state = 'answered' ORDER BY id", [.text(jobID)])
        }
        var merged: [Int: RequestOutcome] = [:]
        for r in found {
            guard let outcomes = OutcomeCodec.decode(r.data(1) ?? Data()) else { throw corrupt(r.int64(0) ?? 0) }
            for o in outcomes {
                if let earlier = merged[o.row], earlier.submitted, !o.submitted { continue }
                merged[o.row] = o
            }
        }
        return merged
    }

    private func corrupt(_ request: Int64) -> LedgerError {
        LedgerError(path: path, code: 0, message: "stored rows or results of request \(request) are corrupt")
    }

    // MARK: - Sent index (dedupe.window)

    /// Every digest sent at or after `since` (UTC s), to preload the in-memory repeat set.
    /// Entries of `excludingJob` are left out: a resumed job is no repeat of itself.
    public func sentSince(_ since: Int64, excludingJob: String) throws(LedgerError) -> [(hi: UInt64, lo: UInt64)] {
        var out: [(hi: UInt64, lo: UInt64)] = []
        try wrap {
            try db.forEachRow("SELECT hi, lo FROM sent_index WHERE sent_at >= ? AND job_id <> ?", [.integer(since), .text(excludingJob)]) { c in
                out.append((hi: UInt64(bitPattern: c.int64(0)), lo: UInt64(bitPattern: c.int64(1))))
            }
        }
        return out
    }

    /// Forgets digests sent before `sentBefore` (UTC s): older than any window still asked.
    public func prune(sentBefore: Int64) throws(LedgerError) {
        try wrap { try db.transaction { () throws(SQLiteError) in try db.execute("DELETE FROM sent_index WHERE sent_at < ?", [.integer(sentBefore)]) } }
    }

    // MARK: - Locks

    /// Deciding new, repeat or resume: `<state.path>.lock`, held with `flock`.
    public func decisionLock() async -> LedgerLock? { await FileLock.exclusive(path + ".lock") }

    /// A job is held with `flock` on `.job.lock` in its output folder, so a process that dies
    /// lets go of it at once.
    public func holdJob(_ id: String, outputDir: String) -> LedgerLock? {
        FileLock.exclusive(Self.jobLockPath(outputDir), wait: false)
    }

    public func isHeld(_ id: String, outputDir: String?) -> Bool {
        guard let outputDir else { return false }
        let fd = open(Self.jobLockPath(outputDir), O_RDONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { Glibc.close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0
    }

    /// Removes the job's lock file under the decision lock: a process deciding about the same
    /// job then either saw it held or finds no file.
    public func releaseJob(_ lock: LedgerLock, outputDir: String) async {
        let decision = await decisionLock()
        unlink(Self.jobLockPath(outputDir))
        lock.release()
        decision?.release()
    }

    static func jobLockPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent(".job.lock") }

    // MARK: - Helpers

    /// Runs `body`, turning SQLite's error into the ledger's (path, code, message).
    /// Untyped `throws` because Swift 6 closures do not infer a typed one; only
    /// `SQLiteDatabase` calls run inside, so the last catch is never taken.
    @discardableResult
    func wrap<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do {
            return try body()
        } catch let error as SQLiteError {
            throw LedgerError(path: path, code: error.code, message: error.message)
        } catch {
            throw LedgerError(path: path, code: 0, message: "\(error)")
        }
    }

    /// Bookkeeping times (`updated_at`, `created_at`, `answered_at`) are real time, not the
    /// job's clock: they tell an operator when the ledger was written.
    private static func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970) }
}
