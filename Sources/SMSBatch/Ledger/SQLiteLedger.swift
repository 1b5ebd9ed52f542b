import Foundation

/// The state ledger (SPEC §10) in one SQLite file: jobs, every request's intent and answer,
/// and the index of sent messages behind `dedupe.window`.
///
/// Durability: WAL with `synchronous=FULL`, so each committed write (an intent above all) has
/// been fsynced before the call returns; a crash after `recordIntent` returns leaves the
/// request in doubt, never forgotten. Calls block while SQLite writes; the sender calls them
/// from its tasks, and they cost one fsync each (see `recordIntent`).
public final class SQLiteLedger: SQLLedger, Ledger, @unchecked Sendable {
    /// The connection, as SQLite (pragmas, tests).
    let sqlite: SQLiteDatabase

    /// The schema version this build writes; `migrations[v - 1]` takes a database to `v`.
    static let schemaVersion = 3
    private static let migrations: [Migration] = [
        Migration(script: migration1), Migration(script: migration2, backfill: backfillMessages), Migration(script: migration3),
    ]

    /// A schema step: its SQL, then what SQL alone cannot do (decoding stored blobs).
    struct Migration: Sendable {
        let script: String
        var backfill: (@Sendable (SQLiteDatabase) throws(SQLError) -> Void)? = nil
    }

    /// Opens the ledger at `path`, creating it and its parent folders if needed, and brings
    /// its schema up to date.
    ///
    /// - Throws: `LedgerError` when the folder or file cannot be created or opened, the file
    ///   is not a database, or its schema comes from a newer smsbatch.
    public init(path: String) throws(LedgerError) {
        let folder = parentDirectory(of: path)
        if !folder.isEmpty && path != ":memory:" {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw LedgerError(path: path, code: 0, message: "cannot create the folder \(folder): \(error.localizedDescription)")
            }
        }
        do {
            sqlite = try SQLiteDatabase(path: path)
        } catch {
            throw LedgerError(path: path, code: error.code, message: error.message)
        }
        super.init(path: path, db: sqlite, insertionOrder: "rowid")
        try wrap {
            // WAL: readers (`smsbatch jobs`) never block the sender; FULL: a commit is on disk.
            _ = try db.query("PRAGMA journal_mode=WAL")
            try db.execute("PRAGMA synchronous=FULL")
            try db.execute("PRAGMA foreign_keys=ON")
        }
        try migrate()
    }

    /// Why the ledger at `path` cannot take a write now, nil when it can: opens it without
    /// creating it and rewrites its schema version unchanged in a write transaction (a real
    /// write, so a read-only file, a full disk or a held write lock all show).
    static func writeProblem(path: String, timeout: Double) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return "\(path): the ledger does not exist" }
        do {
            let probe = try SQLiteDatabase(path: path, create: false, busyTimeout: timeout)
            defer { probe.close() }
            try probe.transaction { () throws(SQLError) in
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
    private static func backfillMessages(_ db: SQLiteDatabase) throws(SQLError) {
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
            version = try wrap { () throws(SQLError) -> Int in
                try db.transaction { () throws(SQLError) -> Int in
                    let current = Int(try db.query("PRAGMA user_version").first?.int64(0) ?? 0)
                    guard current < latest else { return current }
                    try db.executeScript(Self.migrations[current].script)
                    try Self.migrations[current].backfill?(sqlite)
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

    /// `upsertMessages` for the version-2 migration's backfill, before `group_id` exists.
    private static func upsertMessagesV2(_ db: SQLiteDatabase, jobID: String, batch: Int, _ outcomes: [RequestOutcome]) throws(SQLError) {
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

}
