import Foundation
import Synchronization
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

private typealias Outcome = RequestOutcome

private func job(_ id: String, sha: String = "aa", startedAt: Int64 = 1_000, repeatOf: String? = nil) -> JobRecord {
    JobRecord(id: id, input: "/in/\(id).csv", sha256: sha, status: .running, clock: startedAt, repeatOf: repeatOf, startedAt: startedAt)
}

/// Puts digests in the sent index the way the sender does: with the answer of a request.
private func recordSent(_ ledger: any Ledger, jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64) throws {
    if try ledger.job(id: jobID) == nil { try ledger.createJob(job(jobID)) }
    let id = try ledger.recordIntent(jobID: jobID, batch: 1, rows: [])
    try ledger.recordAnswer(requestID: id, httpStatus: 200, outcomes: [], sent: (jobID, digests, at))
}

private func accepted(_ row: Int, _ id: String = "m") -> Outcome {
    Outcome(row: row, submitted: true, messageId: "\(id)\(row)", httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1)
}

private func failed(_ row: Int, status: Int? = 422, code: String = "E422", message: String = "bad") -> Outcome {
    Outcome(row: row, submitted: false, messageId: "", httpStatus: status, errorCode: code, errorMessage: message, attempts: 2)
}

/// The ledgers the contract tests run against.
enum LedgerKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, memory, postgres

    /// A new ledger: a file in `dir`, memory, or a new database on the tests' PostgreSQL.
    func open(_ dir: TempDir, _ name: String) throws -> any Ledger {
        switch self {
        case .sqlite: try SQLiteLedger(path: dir.file(name))
        case .memory: InMemoryLedger()
        case .postgres: try PostgresLedger(url: try PostgresServer.start().createDatabase(), password: nil)
        }
    }

    var testDescription: String { rawValue }
}

@Suite("Ledger: jobs, request intents and answers, sent index, schema")
struct LedgerTests {
    @Test("a job is created, updated, read back, listed newest first, and found by content unless it is a repeat", arguments: LedgerKind.allCases)
    func jobs(kind: LedgerKind) throws {
        let dir = TempDir()
        // Parent folders that do not exist yet are created.
        let ledger = try kind.open(dir, "spool/deep/state.sqlite")
        let a = JobRecord(id: "a", input: "/in/a.csv", sha256: "s1", status: .running, clock: 500, outputDir: nil,
                          rows: 3, startedAt: 1_000)
        try ledger.createJob(a)
        try ledger.createJob(job("b", sha: "s2", startedAt: 2_000))
        try ledger.createJob(job("c", sha: "s1", startedAt: 3_000, repeatOf: "a"))
        #expect(try ledger.job(id: "a") == a)
        #expect(try ledger.job(id: "zz") == nil)

        try ledger.updateJob(id: "a", status: .completed, counts: JobCounts(rows: 10, valid: 8, invalid: 2, duplicates: 1, toSend: 7, submitted: 6, failed: 1),
                             outputDir: "/out/a", finishedAt: 1_500)
        var want = a
        (want.status, want.rows, want.valid, want.invalid, want.duplicates, want.toSend, want.submitted, want.failed) =
            (.completed, 10, 8, 2, 1, 7, 6, 1)
        (want.outputDir, want.finishedAt) = ("/out/a", 1_500)
        #expect(try ledger.job(id: "a") == want)
        // nil arguments leave the fields as they were.
        try ledger.updateJob(id: "a", status: .partial, counts: nil, outputDir: nil, finishedAt: nil)
        want.status = .partial
        #expect(try ledger.job(id: "a") == want)

        #expect(try ledger.jobs().map(\.id) == ["c", "b", "a"])
        #expect(try ledger.jobs(limit: 2).map(\.id) == ["c", "b"])
        #expect(try ledger.latestJob(sha256: "s1")?.id == "a")
        #expect(try ledger.latestJob(sha256: "s3") == nil)

        #expect(throws: LedgerError.self) { try ledger.updateJob(id: "zz", status: .failed, counts: nil, outputDir: nil, finishedAt: nil) }
        let duplicate = #expect(throws: LedgerError.self) { try ledger.createJob(a) }
        #expect(duplicate?.code == 19)  // SQLITE_CONSTRAINT
    }

    @Test("an intent is in doubt until its answer is recorded; intents need a known job", arguments: LedgerKind.allCases)
    func intentsAndAnswers(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        try ledger.createJob(job("k"))
        let r1 = try ledger.recordIntent(jobID: "j", batch: 1, rows: [2, 3, 4])
        let r2 = try ledger.recordIntent(jobID: "j", batch: 2, rows: [70_000, 4_000_000_000])
        let r3 = try ledger.recordIntent(jobID: "k", batch: 1, rows: [])
        #expect(r1 < r2 && r2 < r3)

        var doubt = try ledger.inDoubtRequests(jobID: "j")
        #expect(doubt.map(\.id) == [r1, r2])
        #expect(doubt.map(\.batch) == [1, 2])
        #expect(doubt.map(\.rows) == [[2, 3, 4], [70_000, 4_000_000_000]])
        #expect(try ledger.inDoubtRequests(jobID: "k").map(\.rows) == [[]])

        try ledger.recordAnswer(requestID: r1, httpStatus: 200, outcomes: [accepted(2), accepted(3), failed(4)])
        doubt = try ledger.inDoubtRequests(jobID: "j")
        #expect(doubt.map(\.id) == [r2])
        #expect(try ledger.finalOutcomes(jobID: "j") == [2: accepted(2), 3: accepted(3), 4: failed(4)])

        let unknownJob = #expect(throws: LedgerError.self) { try ledger.recordIntent(jobID: "nope", batch: 1, rows: [1]) }
        #expect(unknownJob?.code == 19)  // foreign key
        #expect(throws: LedgerError.self) { try ledger.recordAnswer(requestID: 9_999, httpStatus: nil, outcomes: []) }
    }

    @Test("row outcomes survive the results blob byte for byte, unicode and extremes included")
    func outcomeBlob() throws {
        let outcomes = [
            Outcome(row: 2, submitted: true, messageId: "4f1c-99", httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1),
            Outcome(row: 1, submitted: false, messageId: "", httpStatus: nil, errorCode: "timeout",
                    errorMessage: "नंबर अमान्य है — «ошибка» 🚫 \u{0}after NUL", attempts: 5),
            Outcome(row: 600_001, submitted: false, messageId: "", httpStatus: 422, errorCode: "E_NODE",
                    errorMessage: String(repeating: "é", count: 300), attempts: 0),
            Outcome(row: 0, submitted: true, messageId: String(repeating: "x", count: 200), httpStatus: -1,
                    errorCode: "", errorMessage: "", attempts: Int(Int32.max)),
        ]
        #expect(OutcomeCodec.decode(OutcomeCodec.encode(outcomes)) == outcomes)
        #expect(OutcomeCodec.decode(OutcomeCodec.encode([])) == [])
        // Truncated or foreign bytes are refused, not misread.
        let bytes = OutcomeCodec.encode(outcomes)
        #expect(OutcomeCodec.decode(bytes.dropLast()) == nil)
        #expect(OutcomeCodec.decode(Data([9, 0])) == nil)
        #expect(OutcomeCodec.decode(Data()) == nil)

        // Through SQLite too, and compact for a typical 500-row answer.
        let dir = TempDir()
        let ledger = try SQLiteLedger(path: dir.file("state.sqlite"))
        try ledger.createJob(job("j"))
        let big = (2..<502).map { accepted($0, "5f0e8c1a-") }
        #expect(OutcomeCodec.encode(big).count < 500 * 24)
        let id = try ledger.recordIntent(jobID: "j", batch: 1, rows: big.map(\.row))
        try ledger.recordAnswer(requestID: id, httpStatus: 200, outcomes: big + outcomes)
        let final = try ledger.finalOutcomes(jobID: "j")
        #expect(final.count == big.count + 3)  // row 2 appears twice: the later (accepted) one wins
        #expect(final[1] == outcomes[1])
        #expect(final[501] == big.last)
    }

    @Test("final outcomes: a later answer replaces an earlier one for a row, but a submitted row stays submitted", arguments: LedgerKind.allCases)
    func mergeRule(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        try ledger.createJob(job("other"))
        let first = try ledger.recordIntent(jobID: "j", batch: 1, rows: [2, 3, 4, 5])
        let second = try ledger.recordIntent(jobID: "j", batch: 1, rows: [3, 4, 5])
        let unanswered = try ledger.recordIntent(jobID: "j", batch: 1, rows: [6])
        let elsewhere = try ledger.recordIntent(jobID: "other", batch: 1, rows: [2])
        _ = unanswered
        try ledger.recordAnswer(requestID: elsewhere, httpStatus: 200, outcomes: [failed(2)])
        // Answered out of order: request order decides, not answer order.
        try ledger.recordAnswer(requestID: second, httpStatus: 502, outcomes: [
            failed(3, status: 503, code: "E5", message: "again"), accepted(4, "second-"), failed(5, status: 422),
        ])
        try ledger.recordAnswer(requestID: first, httpStatus: 200, outcomes: [
            accepted(2), accepted(3), failed(4, status: 500), failed(5, status: 500),
        ])
        let final = try ledger.finalOutcomes(jobID: "j")
        #expect(final[2] == accepted(2))
        #expect(final[3] == accepted(3))  // submitted first, a later failure does not undo it
        #expect(final[4] == accepted(4, "second-"))
        #expect(final[5] == failed(5, status: 422))  // later request wins
        #expect(final[6] == nil)  // in doubt, no outcome
        #expect(final.count == 4)
    }

    @Test("the sent index keeps full 64-bit digests, answers 'sent since' inclusively and prunes older entries", arguments: LedgerKind.allCases)
    func sentIndex(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        let early: [(hi: UInt64, lo: UInt64)] = [(1, 2), (UInt64.max, 0x8000_0000_0000_0000)]
        let late: [(hi: UInt64, lo: UInt64)] = (0..<1_000).map { (hi: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, lo: ~UInt64($0)) }
        try recordSent(ledger, jobID: "a", digests: early, at: 100)
        try recordSent(ledger, jobID: "b", digests: late, at: 200)
        try recordSent(ledger, jobID: "b", digests: [], at: 300)

        func keys(_ d: [(hi: UInt64, lo: UInt64)]) -> Set<[UInt64]> { Set(d.map { [$0.hi, $0.lo] }) }
        #expect(keys(try ledger.sentSince(100)) == keys(early + late))
        #expect(try ledger.sentSince(100).count == 1_002)
        #expect(keys(try ledger.sentSince(101)) == keys(late))
        #expect(keys(try ledger.sentSince(200)) == keys(late))
        #expect(try ledger.sentSince(201).isEmpty)

        try ledger.prune(sentBefore: 200)
        #expect(keys(try ledger.sentSince(0)) == keys(late))
        try ledger.prune(sentBefore: 201)
        #expect(try ledger.sentSince(0).isEmpty)
    }

    @Test("the file is in WAL mode with synchronous=FULL and foreign keys on")
    func pragmas() throws {
        let dir = TempDir()
        let ledger = try SQLiteLedger(path: dir.file("state.sqlite"))
        #expect(try ledger.db.query("PRAGMA journal_mode").first?.string(0) == "wal")
        #expect(try ledger.db.query("PRAGMA synchronous").first?.int64(0) == 2)  // FULL
        #expect(try ledger.db.query("PRAGMA foreign_keys").first?.int64(0) == 1)
        #expect(try ledger.db.query("PRAGMA busy_timeout").first?.int64(0) == 10_000)
    }

    @Test("opening an existing ledger keeps its data and migrates nothing again; a newer schema is refused")
    func migrations() throws {
        let dir = TempDir()
        let path = dir.file("state.sqlite")
        do {
            let ledger = try SQLiteLedger(path: path)
            try ledger.createJob(job("kept"))
            ledger.close()
        }
        let again = try SQLiteLedger(path: path)
        #expect(try again.db.query("PRAGMA user_version").first?.int64(0) == Int64(SQLiteLedger.schemaVersion))
        #expect(try again.job(id: "kept")?.id == "kept")
        #expect(try again.db.query("SELECT count(*) FROM sqlite_master WHERE name = 'jobs'").first?.int64(0) == 1)

        try again.db.execute("PRAGMA user_version = \(SQLiteLedger.schemaVersion + 1)")
        again.close()
        let refused = #expect(throws: LedgerError.self) { try SQLiteLedger(path: path) }
        #expect(refused?.description.hasPrefix("\(path): state ledger: schema version \(SQLiteLedger.schemaVersion + 1) comes from a newer smsbatch") == true)
    }

    @Test("a version-1 ledger is migrated: its answered rows count in the live counts of its unfinished jobs")
    func migrationFromVersion1() throws {
        let dir = TempDir()
        let path = dir.file("state.sqlite")
        do {
            let db = try SQLiteDatabase(path: path)
            try db.executeScript(SQLiteLedger.migration1)
            try db.execute("PRAGMA user_version = 1")
            try db.execute("INSERT INTO jobs(id, input, sha256, status, clock, started_at) VALUES('old', 'a.csv', 'x', 'sending', 0, 0)")
            let answer = OutcomeCodec.encode([accepted(2), failed(3, status: 503, code: "HTTP_503"), accepted(4)])
            try db.execute(#"INSERT INTO requests(job_id, batch, "rows", state, results) VALUES('old', 1, ?, 'answered', ?)"#,
                           [.blob(RowListCodec.encode([2, 3, 4])), .blob(answer)])
            try db.execute(#"INSERT INTO requests(job_id, batch, "rows", state) VALUES('old', 2, ?, 'intent')"#,
                           [.blob(RowListCodec.encode([5, 6]))])
            db.close()
        }
        let ledger = try SQLiteLedger(path: path)
        let counts = try ledger.sendCounts(jobID: "old")
        #expect(counts.total.submitted == 2)
        #expect(counts.total.failed == 1)
        #expect(counts.total.inDoubt == 2)
        #expect(counts.batches[2]?.inDoubt == 2)
        #expect(counts.total.requests == 2)
    }

    @Test("live counts: a submitted row stays submitted; a failed row re-sent is in flight, not failed, until answered", arguments: LedgerKind.allCases)
    func liveCounts(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        let first = try ledger.recordIntent(jobID: "j", batch: 1, rows: [2, 3, 4])
        #expect(try ledger.sendCounts(jobID: "j").total.inDoubt == 3)
        try ledger.recordAnswer(requestID: first, httpStatus: 200, outcomes: [accepted(2), failed(3, status: 503), failed(4, status: 503)])
        var counts = try ledger.sendCounts(jobID: "j").total
        #expect((counts.submitted, counts.failed, counts.inDoubt) == (1, 2, 0))
        // A later run sends rows 3 and 4 again: in flight, no longer failed.
        let again = try ledger.recordIntent(jobID: "j", batch: 1, rows: [3, 4], retrying: [3, 4])
        counts = try ledger.sendCounts(jobID: "j").total
        #expect((counts.submitted, counts.failed, counts.inDoubt) == (1, 0, 2))
        try ledger.recordAnswer(requestID: again, httpStatus: 200, outcomes: [accepted(3), failed(4, status: 422)])
        counts = try ledger.sendCounts(jobID: "j").total
        #expect((counts.submitted, counts.failed, counts.inDoubt, counts.requests) == (2, 1, 0, 2))
        // A failure recorded after a success does not undo it.
        let late = try ledger.recordIntent(jobID: "j", batch: 1, rows: [2])
        try ledger.recordAnswer(requestID: late, httpStatus: 500, outcomes: [failed(2, status: 500)])
        #expect(try ledger.sendCounts(jobID: "j").total.submitted == 2)
    }

    @Test("locks: one decision at a time; a job held by one holder is refused to another until released", arguments: LedgerKind.allCases)
    func locks(kind: LedgerKind) async throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(!ledger.isHeld("j", outputDir: out))
        let held = try #require(ledger.holdJob("j", outputDir: out))
        #expect(ledger.isHeld("j", outputDir: out))
        #expect(ledger.holdJob("j", outputDir: out) == nil)
        await ledger.releaseJob(held, outputDir: out)
        #expect(!ledger.isHeld("j", outputDir: out))
        let again = try #require(ledger.holdJob("j", outputDir: out))
        again.release()
        // A second decision waits for the first.
        let first = try #require(await ledger.decisionLock())
        let order = Locked<[String]>([])
        let waiter = Task {
            let second = await ledger.decisionLock()
            order.withLock { $0.append("second") }
            second?.release()
        }
        try await Task.sleep(for: .milliseconds(50))
        order.withLock { $0.append("first done") }
        first.release()
        await waiter.value
        #expect(order.withLock { $0 } == ["first done", "second"])
    }

    @Test("the plan is kept per job and replaced when the job plans again", arguments: LedgerKind.allCases)
    func plan(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        let one = BatchRecord(batch: 1, part: 1, rows: 10, requests: 1, scheduledAt: nil, deferred: 0)
        let two = BatchRecord(batch: 2, part: 1, rows: 5, requests: 3, scheduledAt: 1_800_000_000, deferred: 2)
        try ledger.recordPlan(jobID: "j", [one, two])
        try ledger.recordPlan(jobID: "j", [one, two])
        #expect(try ledger.plan(jobID: "j") == [one, two])
    }

    @Test("errors name the file and carry SQLite's code and message")
    func errors() throws {
        let dir = TempDir()
        let path = dir.write("state.sqlite", String(repeating: "not a database, ", count: 100))
        let e = #expect(throws: LedgerError.self) { try SQLiteLedger(path: path) }
        #expect(e?.code == 26)  // SQLITE_NOTADB
        #expect(e?.description == "\(path): state ledger: file is not a database")

        let ledger = try SQLiteLedger(path: dir.file("ok.sqlite"))
        ledger.close()
        let closed = #expect(throws: LedgerError.self) { try ledger.jobs() }
        #expect(closed?.code == 21)  // SQLITE_MISUSE
    }

    @Test("8 concurrent tasks record intents and answers on one ledger without errors", arguments: LedgerKind.allCases)
    func concurrency(kind: LedgerKind) async throws {
        let dir = TempDir()
        let ledger = try kind.open(dir, "state.sqlite")
        try ledger.createJob(job("j"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<25 {
                        let rows = Array((t * 1_000 + i * 10)..<(t * 1_000 + i * 10 + 10))
                        let id = try ledger.recordIntent(jobID: "j", batch: t, rows: rows)
                        try ledger.recordAnswer(requestID: id, httpStatus: 200, outcomes: rows.map { accepted($0) })
                        if i % 5 == 0 {
                            try recordSent(ledger, jobID: "j", digests: rows.map { (hi: UInt64($0), lo: UInt64(t)) }, at: Int64(i))
                            _ = try ledger.inDoubtRequests(jobID: "j")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try ledger.inDoubtRequests(jobID: "j").isEmpty)
        #expect(try ledger.finalOutcomes(jobID: "j").count == 8 * 25 * 10)
        #expect(try ledger.sentSince(0).count == 8 * 5 * 10)
    }

    /// The ledger's cost on send throughput: run with SMSBATCH_BENCH=1 in a release build.
    @Test("benchmark: recordIntent + recordAnswer pairs per second with 500-row requests",
          .enabled(if: ProcessInfo.processInfo.environment["SMSBATCH_BENCH"] != nil))
    func benchmark() async throws {
        let dir = TempDir()
        let ledger = try SQLiteLedger(path: dir.file("state.sqlite"))
        try ledger.createJob(job("j"))
        let n = 400
        let outcomes = (0..<500).map { accepted($0, "6b1f2c9e-4d1a-4c3b-9a7e-") }
        let rows = outcomes.map(\.row)

        let clock = ContinuousClock()
        let serial = clock.measure {
            for _ in 0..<n {
                let id = try! ledger.recordIntent(jobID: "j", batch: 1, rows: rows)
                try! ledger.recordAnswer(requestID: id, httpStatus: 200, outcomes: outcomes)
            }
        }
        let concurrent = try await clock.measure {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        for _ in 0..<(n / 4) {
                            let id = try ledger.recordIntent(jobID: "j", batch: 1, rows: rows)
                            try ledger.recordAnswer(requestID: id, httpStatus: 200, outcomes: outcomes)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let codec = clock.measure { for _ in 0..<n { _ = OutcomeCodec.decode(OutcomeCodec.encode(outcomes)) } }
        let final = clock.measure { _ = try! ledger.finalOutcomes(jobID: "j") }
        let digests = (0..<500_000).map { (hi: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, lo: UInt64($0)) }
        let sent = clock.measure { try! recordSent(ledger, jobID: "j", digests: digests, at: 1) }
        let since = clock.measure { _ = try! ledger.sentSince(0) }

        func perSecond(_ d: Duration, _ count: Int) -> Int { Int(Double(count) / (Double(d.components.attoseconds) / 1e18 + Double(d.components.seconds))) }
        print("""
            ledger bench: \(perSecond(serial, n)) pairs/s serial, \(perSecond(concurrent, n)) pairs/s with 4 tasks \
            (500-row requests); outcome blob encode+decode \(perSecond(codec, n)) /s (\(OutcomeCodec.encode(outcomes).count) bytes); \
            finalOutcomes over \(2 * n * 500) outcomes \(final); recordSent 500k \(sent); sentSince 500k \(since)
            """)
    }
}
