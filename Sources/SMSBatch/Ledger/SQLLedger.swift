import Foundation

/// The state ledger's logic in SQL, shared by its two engines: `SQLiteLedger` (one file, one
/// host) and `PostgresLedger` (one server, several hosts). Each engine brings its connection,
/// its schema and its locks; the statements here run unchanged on both.
///
/// Durability is the engine's: every write is one transaction, committed (and on disk) when
/// the call returns, so a crash after `recordIntent` leaves the request in doubt, never
/// forgotten. Calls block while the engine writes.
public class SQLLedger: @unchecked Sendable {
    // @unchecked: the only state is `db`, which serialises every call on its connection.

    /// Where the ledger is, for messages: a file, or a server and database.
    public let path: String
    let db: any SQLDatabase
    /// The column that orders jobs started in the same second (SQLite's `rowid`, a sequence
    /// on PostgreSQL).
    private let insertionOrder: String
    /// An expression for the worker holding a job (`host pid N`), NULL where the engine
    /// does not know.
    private let workerColumn: String

    init(path: String, db: any SQLDatabase, insertionOrder: String, workerColumn: String = "NULL") {
        self.path = path
        self.db = db
        self.insertionOrder = insertionOrder
        self.workerColumn = workerColumn
    }

    /// Closes the connection; later calls throw. The ledger also closes when released.
    public func close() { db.close() }

    /// Run inside each intent's transaction before it is recorded: an engine whose jobs are
    /// leased refuses the intent of a job this process no longer holds.
    func checkIntent(jobID: String) throws(SQLError) {}

    /// Run first in a transaction that reads a job's rows and then writes from what it read:
    /// an engine whose writers run side by side (PostgreSQL) locks the job's row until the
    /// transaction ends. SQLite's write transactions already run one at a time.
    func lockJobRow(jobID: String) throws(SQLError) {}

    // MARK: - Jobs

    static let jobColumns = """
        id, input, sha256, status, clock, output_dir, repeat_of, "rows", valid, invalid, duplicates, \
        to_send, submitted, failed, started_at, finished_at, in_doubt, file_now, destination
        """

    /// Records a new job.
    ///
    /// - Throws: `LedgerError` (SQLITE_CONSTRAINT) when a job with this id exists.
    public func createJob(_ j: JobRecord) throws(LedgerError) {
        try wrap {
            try db.transaction { () throws(SQLError) in try db.execute(
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
        var values: [SQLValue] = [.text(status.rawValue), .integer(Self.wallClock())]
        if let c = counts {
            sets.append(#""rows" = ?, valid = ?, invalid = ?, duplicates = ?, to_send = ?, submitted = ?, failed = ?, in_doubt = ?"#)
            values += [c.rows, c.valid, c.invalid, c.duplicates, c.toSend, c.submitted, c.failed, c.inDoubt].map { .integer(Int64($0)) }
        }
        if let outputDir { sets.append("output_dir = ?"); values.append(.text(outputDir)) }
        if let finishedAt { sets.append("finished_at = ?"); values.append(.integer(finishedAt)) }
        if let destination { sets.append("destination = ?"); values.append(.text(destination)) }
        values.append(.text(id))
        let changed = try wrap { try db.transaction { () throws(SQLError) in try db.execute("UPDATE jobs SET \(sets.joined(separator: ", ")) WHERE id = ?", values) } }
        if changed == 0 { throw LedgerError(path: path, code: 0, message: "no job \(id)") }
    }

    /// Records where the job's input file went (done/ or failed/).
    public func recordFileLocation(jobID: String, path file: String) throws(LedgerError) {
        try wrap { try db.transaction { () throws(SQLError) in try db.execute("UPDATE jobs SET file_now = ?, updated_at = ? WHERE id = ?", [.text(file), .integer(Self.wallClock()), .text(jobID)]) } }
    }

    /// The job with this id, nil when there is none.
    public func job(id: String) throws(LedgerError) -> JobRecord? {
        try wrap { try db.query("SELECT \(Self.jobColumns), \(workerColumn) FROM jobs WHERE id = ?", [.text(id)]) }.first.map(Self.jobRecord)
    }

    /// The newest `limit` jobs, newest first.
    public func jobs(limit: Int) throws(LedgerError) -> [JobRecord] {
        try wrap {
            try db.query("SELECT \(Self.jobColumns), \(workerColumn) FROM jobs ORDER BY started_at DESC, \(insertionOrder) DESC LIMIT ?", [.integer(Int64(limit))])
        }.map(Self.jobRecord)
    }

    /// The newest real job (not a recorded repeat) of the file with this SHA-256, nil when
    /// the content was never seen: what repeat detection and resume look at.
    public func latestJob(sha256: String) throws(LedgerError) -> JobRecord? {
        try wrap {
            try db.query(
                "SELECT \(Self.jobColumns), \(workerColumn) FROM jobs WHERE sha256 = ? AND repeat_of IS NULL ORDER BY started_at DESC, \(insertionOrder) DESC LIMIT 1",
                [.text(sha256)])
        }.first.map(Self.jobRecord)
    }

    private static func jobRecord(_ r: SQLRow) -> JobRecord {
        var j = JobRecord(
            id: r.string(0) ?? "", input: r.string(1) ?? "", sha256: r.string(2) ?? "",
            status: JobStatus(rawValue: r.string(3) ?? "") ?? .failed,
            clock: r.int64(4) ?? 0, outputDir: r.string(5), repeatOf: r.string(6), rows: r.int(7) ?? 0,
            valid: r.int(8) ?? 0, invalid: r.int(9) ?? 0, duplicates: r.int(10) ?? 0, toSend: r.int(11) ?? 0,
            submitted: r.int(12) ?? 0, failed: r.int(13) ?? 0, startedAt: r.int64(14) ?? 0, finishedAt: r.int64(15))
        j.inDoubt = r.int(16) ?? 0
        j.fileNow = r.string(17)
        j.destination = r.string(18)
        j.worker = r.string(19)
        return j
    }

    // MARK: - Plan and live counts


    /// Records a job's plan, replacing the one an earlier run of the job recorded.
    public func recordPlan(jobID: String, _ batches: [BatchRecord]) throws(LedgerError) {
        try wrap {
            try db.transaction { () throws(SQLError) in
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
            try db.snapshot { () throws(SQLError) -> ([SQLRow], [SQLRow]) in
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
        let values: [SQLValue] = [.text(jobID), .integer(Int64(batch)), .blob(RowListCodec.encode(rows)), .integer(Int64(rows.count)),
                                     .integer(Self.wallClock())]
        let id = try wrap { () throws(SQLError) -> Int64? in
            try db.transaction { () throws(SQLError) -> Int64? in
                try checkIntent(jobID: jobID)
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
            try db.transaction { () throws(SQLError) -> Int in
                let changed = try db.execute(
                    "UPDATE requests SET state = 'answered', http_status = ?, results = ?, answered_at = ? WHERE id = ?",
                    [httpStatus.map { .integer(Int64($0)) } ?? .null, .blob(OutcomeCodec.encode(outcomes)),
                     .integer(Self.wallClock()), .integer(requestID)])
                if changed > 0 && !outcomes.isEmpty, let request = try db.query("SELECT job_id, batch FROM requests WHERE id = ?", [.integer(requestID)]).first {
                    try Self.upsertMessages(db, jobID: request.string(0) ?? "", batch: request.int(1) ?? 0, outcomes)
                }
                if let sent {
                    try Self.insert(db, "INSERT INTO sent_index(hi, lo, sent_at, job_id) VALUES", sent.digests.map {
                        [.integer(Int64(bitPattern: $0.hi)), .integer(Int64(bitPattern: $0.lo)), .integer(sent.at), .text(sent.jobID)]
                    })
                }
                return changed
            }
        }
        if changed == 0 { throw LedgerError(path: path, code: 0, message: "no request \(requestID)") }
    }

    /// Each row's latest state in `messages`; a submitted row stays submitted (a later failure
    /// of a re-send cannot undo an accepted message).
    static func upsertMessages(_ db: any SQLDatabase, jobID: String, batch: Int, _ outcomes: [RequestOutcome]) throws(SQLError) {
        // One state a row: a row twice in one statement is an error on PostgreSQL.
        var last: [Int: Int] = [:]
        for (i, o) in outcomes.enumerated() { last[o.row] = i }
        let rows = outcomes.enumerated().filter { last[$0.element.row] == $0.offset }.map { _, o -> [SQLValue] in
            [.text(jobID), .integer(Int64(o.row)), .integer(Int64(batch)), .text(o.submitted ? "submitted" : "failed"),
             o.messageId.isEmpty ? .null : .text(o.messageId), o.groupId.map { .text($0) } ?? .null]
        }
        try insert(db, #"INSERT INTO messages(job_id, "row", batch, state, message_id, group_id) VALUES"#, rows, then: #"""
            ON CONFLICT(job_id, "row") DO UPDATE SET state = excluded.state, message_id = excluded.message_id,
                group_id = excluded.group_id
            WHERE messages.state <> 'submitted'
            """#)
    }

    /// Inserts `rows` with a few multi-row statements (100 rows each) rather than one
    /// statement a row: on a server each statement is a round trip.
    static func insert(_ db: any SQLDatabase, _ head: String, _ rows: [[SQLValue]], then tail: String = "") throws(SQLError) {
        guard let width = rows.first?.count else { return }
        let tuple = "(" + Array(repeating: "?", count: width).joined(separator: ", ") + ")"
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 100, rows.count)]
            try db.execute(head + " " + Array(repeating: tuple, count: chunk.count).joined(separator: ", ") + " " + tail,
                           chunk.flatMap { $0 })
            start += chunk.count
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
            try db.forEachRow("SELECT hi, lo FROM sent_index WHERE sent_at >= ? AND job_id <> ?", [.integer(since), .text(excludingJob)]) { r in
                out.append((hi: UInt64(bitPattern: r.int64(0) ?? 0), lo: UInt64(bitPattern: r.int64(1) ?? 0)))
            }
        }
        return out
    }

    /// Forgets digests sent before `sentBefore` (UTC s): older than any window still asked.
    public func prune(sentBefore: Int64) throws(LedgerError) {
        try wrap { try db.transaction { () throws(SQLError) in try db.execute("DELETE FROM sent_index WHERE sent_at < ?", [.integer(sentBefore)]) } }
    }


    // MARK: - Helpers

    /// Runs `body`, turning SQLite's error into the ledger's (path, code, message).
    /// Untyped `throws` because Swift 6 closures do not infer a typed one; only
    /// `SQLiteDatabase` calls run inside, so the last catch is never taken.
    @discardableResult
    func wrap<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do {
            return try body()
        } catch let error as SQLError {
            throw LedgerError(path: path, code: error.code, message: error.message)
        } catch {
            throw LedgerError(path: path, code: 0, message: "\(error)")
        }
    }

    /// Bookkeeping times (`updated_at`, `created_at`, `answered_at`) are real time, not the
    /// job's clock: they tell an operator when the ledger was written.
    static func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970) }
}
