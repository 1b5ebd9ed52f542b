import Foundation

/// The state ledger could not be opened, read or written (SPEC §10, `state.path`).
public struct LedgerError: Error, Equatable, CustomStringConvertible {
    /// The ledger file.
    public let path: String
    /// SQLite's result code, or 0 when the ledger itself refused (schema from a newer
    /// smsbatch, unknown request, corrupt stored results, folder not creatable).
    public let code: Int32
    /// SQLite's own message, or the ledger's.
    public let message: String

    public var description: String { "\(path): error: state ledger: \(message)" }
}

/// One job as the ledger keeps it (`smsbatch jobs`, repeat detection, resume).
public struct JobRecord: Sendable, Equatable {
    public var id: String
    /// The input file's path as given.
    public var input: String
    /// SHA-256 of the input's bytes, hex.
    public var sha256: String
    public var status: String
    /// The job's "now" (UTC seconds): `--now` or the clock at its start, so a resumed job
    /// plans its batches from the same instant.
    public var clock: Int64
    public var outputDir: String?
    /// The completed job this one repeats (a file already sent), nil for a real job.
    public var repeatOf: String?
    public var rows, valid, invalid, duplicates, toSend, submitted, failed: Int
    public var startedAt: Int64
    public var finishedAt: Int64?

    public init(
        id: String, input: String, sha256: String, status: String, clock: Int64, outputDir: String? = nil,
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

/// The state ledger (SPEC §10): jobs, every request's intent and answer, and the index of
/// sent messages behind `dedupe.window`, in one SQLite file.
///
/// Durability: WAL with `synchronous=FULL`, so each committed write (an intent above all) has
/// been fsynced before the call returns; a crash after `recordIntent` returns leaves the
/// request in doubt, never forgotten. Calls block while SQLite writes; the sender calls them
/// from its tasks, and they cost one fsync each (see `recordIntent`).
public final class Ledger: @unchecked Sendable {
    // @unchecked: the only state is `db`, which serializes every call under its own lock.

    /// The file, for error messages.
    public let path: String
    let db: SQLiteDatabase

    /// The schema version this build writes; `migrations[v - 1]` takes a database to `v`.
    static let schemaVersion = 1
    private static let migrations = [migration1]

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

    // MARK: - Schema

    private static let migration1 = """
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
                    try db.executeScript(Self.migrations[current])
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
        to_send, submitted, failed, started_at, finished_at
        """

    /// Records a new job.
    ///
    /// - Throws: `LedgerError` (SQLITE_CONSTRAINT) when a job with this id exists.
    public func createJob(_ j: JobRecord) throws(LedgerError) {
        try wrap {
            try db.execute(
                "INSERT INTO jobs(\(Self.jobColumns), updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [.text(j.id), .text(j.input), .text(j.sha256), .text(j.status), .integer(j.clock),
                 j.outputDir.map { .text($0) } ?? .null, j.repeatOf.map { .text($0) } ?? .null,
                 .integer(Int64(j.rows)), .integer(Int64(j.valid)), .integer(Int64(j.invalid)),
                 .integer(Int64(j.duplicates)), .integer(Int64(j.toSend)), .integer(Int64(j.submitted)),
                 .integer(Int64(j.failed)), .integer(j.startedAt), j.finishedAt.map { .integer($0) } ?? .null,
                 .integer(Self.wallClock())])
        }
    }

    /// Sets a job's status and, where given, its counts, output folder and end time; a nil
    /// argument leaves that field as it is.
    ///
    /// - Throws: `LedgerError` (code 0) when there is no job `id`.
    public func updateJob(
        id: String, status: String,
        counts: (rows: Int, valid: Int, invalid: Int, duplicates: Int, toSend: Int, submitted: Int, failed: Int)?,
        outputDir: String?, finishedAt: Int64?
    ) throws(LedgerError) {
        var sets = ["status = ?", "updated_at = ?"]
        var values: [SQLiteValue] = [.text(status), .integer(Self.wallClock())]
        if let c = counts {
            sets.append(#""rows" = ?, valid = ?, invalid = ?, duplicates = ?, to_send = ?, submitted = ?, failed = ?"#)
            values += [c.rows, c.valid, c.invalid, c.duplicates, c.toSend, c.submitted, c.failed].map { .integer(Int64($0)) }
        }
        if let outputDir { sets.append("output_dir = ?"); values.append(.text(outputDir)) }
        if let finishedAt { sets.append("finished_at = ?"); values.append(.integer(finishedAt)) }
        values.append(.text(id))
        let changed = try wrap { try db.execute("UPDATE jobs SET \(sets.joined(separator: ", ")) WHERE id = ?", values) }
        if changed == 0 { throw LedgerError(path: path, code: 0, message: "no job \(id)") }
    }

    /// The job with this id, nil when there is none.
    public func job(id: String) throws(LedgerError) -> JobRecord? {
        try wrap { try db.query("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.text(id)]) }.first.map(Self.jobRecord)
    }

    /// The newest `limit` jobs, newest first.
    public func jobs(limit: Int = 1000) throws(LedgerError) -> [JobRecord] {
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
        JobRecord(
            id: r.string(0) ?? "", input: r.string(1) ?? "", sha256: r.string(2) ?? "", status: r.string(3) ?? "",
            clock: r.int64(4) ?? 0, outputDir: r.string(5), repeatOf: r.string(6), rows: r.int(7) ?? 0,
            valid: r.int(8) ?? 0, invalid: r.int(9) ?? 0, duplicates: r.int(10) ?? 0, toSend: r.int(11) ?? 0,
            submitted: r.int(12) ?? 0, failed: r.int(13) ?? 0, startedAt: r.int64(14) ?? 0, finishedAt: r.int64(15))
    }

    // MARK: - Requests

    /// Records that a request for these rows of `batch` is about to go out, and returns its
    /// id. Call it before sending: it returns once the intent is committed and fsynced (one
    /// statement, one transaction), so after a crash the rows are in doubt, never unknown.
    ///
    /// - Throws: `LedgerError` (SQLITE_CONSTRAINT) when the job is not in the ledger.
    func recordIntent(jobID: String, batch: Int, rows: [Int]) throws(LedgerError) -> Int64 {
        let id = try wrap {
            try db.query(
                #"INSERT INTO requests(job_id, batch, "rows", state, created_at) VALUES(?, ?, ?, 'intent', ?) RETURNING id"#,
                [.text(jobID), .integer(Int64(batch)), .blob(RowListCodec.encode(rows)), .integer(Self.wallClock())])
        }.first?.int64(0)
        guard let id else { throw LedgerError(path: path, code: 0, message: "no id for the request of job \(jobID)") }
        return id
    }

    /// Records the answer to request `requestID` (its state becomes `answered`): the final
    /// HTTP status (nil when none came) and what happened to each row.
    ///
    /// - Throws: `LedgerError` (code 0) when there is no such request.
    func recordAnswer(requestID: Int64, httpStatus: Int?, outcomes: [RowOutcome],
                      sent: (jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64)? = nil) throws(LedgerError) {
        // The answer and the sent-index entries of its accepted rows commit together.
        let changed = try wrap {
            try db.transaction { () throws(SQLiteError) -> Int in
                let changed = try db.execute(
                    "UPDATE requests SET state = 'answered', http_status = ?, results = ?, answered_at = ? WHERE id = ?",
                    [httpStatus.map { .integer(Int64($0)) } ?? .null, .blob(OutcomeCodec.encode(outcomes)),
                     .integer(Self.wallClock()), .integer(requestID)])
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

    /// The job's requests that went out (or were about to) and were never answered, oldest
    /// first: their rows must be looked up at the provider before anything is sent again.
    func inDoubtRequests(jobID: String) throws(LedgerError) -> [(id: Int64, batch: Int, rows: [Int])] {
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
    func finalOutcomes(jobID: String) throws(LedgerError) -> [Int: RowOutcome] {
        let found = try wrap {
            try db.query("SELECT id, results FROM requests WHERE job_id = ? AND state = 'answered' ORDER BY id", [.text(jobID)])
        }
        var merged: [Int: RowOutcome] = [:]
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

    /// Adds the digests of messages the provider accepted at `at` (UTC s), in one transaction.
    func recordSent(jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64) throws(LedgerError) {
        guard !digests.isEmpty else { return }
        try wrap {
            try db.transaction { () throws(SQLiteError) in
                for d in digests {
                    try db.execute(
                        "INSERT INTO sent_index(hi, lo, sent_at, job_id) VALUES(?, ?, ?, ?)",
                        [.integer(Int64(bitPattern: d.hi)), .integer(Int64(bitPattern: d.lo)), .integer(at), .text(jobID)])
                }
            }
        }
    }

    /// Every digest sent at or after `since` (UTC s), to preload the in-memory repeat set.
    /// Entries of `excludingJob` are left out: a resumed job is no repeat of itself.
    func sentSince(_ since: Int64, excludingJob: String = "") throws(LedgerError) -> [(hi: UInt64, lo: UInt64)] {
        var out: [(hi: UInt64, lo: UInt64)] = []
        try wrap {
            try db.forEachRow("SELECT hi, lo FROM sent_index WHERE sent_at >= ? AND job_id <> ?", [.integer(since), .text(excludingJob)]) { c in
                out.append((hi: UInt64(bitPattern: c.int64(0)), lo: UInt64(bitPattern: c.int64(1))))
            }
        }
        return out
    }

    /// Forgets digests sent before `sentBefore` (UTC s): older than any window still asked.
    func prune(sentBefore: Int64) throws(LedgerError) {
        try wrap { try db.execute("DELETE FROM sent_index WHERE sent_at < ?", [.integer(sentBefore)]) }
    }

    // MARK: - Helpers

    /// Runs `body`, turning SQLite's error into the ledger's (path, code, message).
    /// Untyped `throws` because Swift 6 closures do not infer a typed one; only
    /// `SQLiteDatabase` calls run inside, so the last catch is never taken.
    @discardableResult
    private func wrap<T>(_ body: () throws -> T) throws(LedgerError) -> T {
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
