import Foundation
import Testing
@testable import SMSBatch

/// Two workers on one database (a new one unless `url` is given): two ledgers, as two hosts
/// would open it.
private func twoWorkers(lease: Int = 3, url: String? = nil) throws -> (PostgresLedger, PostgresLedger) {
    let url = try url ?? PostgresServer.start().createDatabase()
    return (try PostgresLedger(url: url, password: nil, lease: lease, worker: ("host-a", 101)),
            try PostgresLedger(url: url, password: nil, lease: lease, worker: ("host-b", 202)))
}

private func runningJob(_ id: String) -> JobRecord {
    JobRecord(id: id, input: "/in/\(id).csv", sha256: "s-\(id)", status: .sending, clock: 1_000, outputDir: "/out/\(id)", startedAt: 1_000)
}

@Suite("Ledger on PostgreSQL: several workers, one ledger")
struct PostgresLedgerTests {
    @Test("a job held by one worker is refused to another, and jobs names the holder's host and pid")
    func leaseHeld() async throws {
        let (a, b) = try twoWorkers(lease: 30)
        let dir = TempDir()
        try a.createJob(runningJob("j1"))
        let held = try #require(a.holdJob("j1", outputDir: dir.file("a/j1")))
        #expect(b.holdJob("j1", outputDir: dir.file("b/j1")) == nil)
        #expect(b.isHeld("j1", outputDir: nil))
        #expect(try b.job(id: "j1")?.worker == "host-a pid 101")
        #expect(try b.jobs().first?.worker == "host-a pid 101")
        await a.releaseJob(held, outputDir: dir.file("a/j1"))
        #expect(!b.isHeld("j1", outputDir: nil))
        #expect(try b.job(id: "j1")?.worker == nil)
        let taken = try #require(b.holdJob("j1", outputDir: dir.file("b/j1")))
        #expect(try a.job(id: "j1")?.worker == "host-b pid 202")
        await b.releaseJob(taken, outputDir: dir.file("b/j1"))
    }

    @Test("a worker that stops renewing loses its job after the lease; the next worker takes it and the first can record no more intents")
    func leaseExpires() async throws {
        let (a, b) = try twoWorkers(lease: 3)
        let dir = TempDir()
        try a.createJob(runningJob("j2"))
        let held = try #require(a.holdJob("j2", outputDir: dir.file("a/j2")) as? JobLease)
        _ = try a.recordIntent(jobID: "j2", batch: 1, rows: [1, 2])
        // The worker hangs: its lease is no longer renewed (a dead host renews nothing either).
        held.stop()
        #expect(b.holdJob("j2", outputDir: dir.file("b/j2")) == nil, "the lease is still live")
        var taken: LedgerLock?
        #expect(await waitUntil(timeout: 30) {
            taken = b.holdJob("j2", outputDir: dir.file("b/j2"))
            return taken != nil
        })
        // Fenced: the first worker's intents are refused from now on.
        let refused = #expect(throws: LedgerError.self) { try a.recordIntent(jobID: "j2", batch: 1, rows: [3]) }
        #expect(refused?.message.contains("lease ran out") == true)
        // The new holder sees the old intent in doubt, and records its own.
        #expect(try b.inDoubtRequests(jobID: "j2").map(\.rows) == [[1, 2]])
        _ = try b.recordIntent(jobID: "j2", batch: 1, rows: [3])
        if let taken { await b.releaseJob(taken, outputDir: dir.file("b/j2")) }
    }

    @Test("an intent pushes its job's lease a whole lease on: a worker whose renewals stalled (a second left) but who still sends keeps its job")
    func intentExtendsLease() async throws {
        let (a, b) = try twoWorkers(lease: 30)
        let dir = TempDir()
        try a.createJob(runningJob("j4"))
        let held = try #require(a.holdJob("j4", outputDir: dir.file("a/j4")) as? JobLease)
        held.stop()
        // The renewals stalled: one second of the lease is left.
        try a.postgres.execute("UPDATE leases SET expires_at = extract(epoch from clock_timestamp()) + 1 WHERE job_id = 'j4'", [])
        _ = try a.recordIntent(jobID: "j4", batch: 1, rows: [1])
        let left = try a.postgres.query("SELECT (expires_at - extract(epoch from clock_timestamp()))::bigint FROM leases WHERE job_id = 'j4'", [])
        #expect((left.first?.int64(0) ?? 0) > 20, "the lease was not pushed on")
        #expect(b.holdJob("j4", outputDir: dir.file("b/j4")) == nil)
        await a.releaseJob(held, outputDir: dir.file("a/j4"))
    }

    @Test("two workers pulling the same delivery reports count each row once: a report, and a job's expiry, recorded by one while the other's transaction is open")
    func deliveriesCountedOnce() async throws {
        let url = try PostgresServer.start().createDatabase()
        let (a, b) = try twoWorkers(lease: 30, url: url)
        try a.createJob(runningJob("j5"))
        let r = try a.recordIntent(jobID: "j5", batch: 1, rows: [2, 3])
        try a.recordAnswer(requestID: r, httpStatus: 200, outcomes: [2, 3].map {
            RequestOutcome(row: $0, submitted: true, messageId: "m\($0)", httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1)
        })
        // Worker a records row 2's report in a transaction still open when b records it too.
        let x = try PostgresDatabase(url: url, password: nil, reconnectFor: 0, deadPeer: 600)
        defer { x.close() }
        // Who waits for a lock is asked on a connection of its own: inside x's transaction
        // pg_stat_activity would show the snapshot of its first look for as long as it lasts.
        let watcher = try PostgresDatabase(url: url, password: nil, reconnectFor: 0)
        defer { watcher.close() }
        func whileOpen(_ statements: [String], _ other: @escaping @Sendable () throws -> Void) async throws {
            _ = try x.execute("BEGIN", [])
            for sql in statements { _ = try x.execute(sql, []) }
            let done = Locked<Result<Void, any Error>?>(nil)
            Thread { done.withLock { $0 = Result { try other() } } }.start()
            // b waits for a's lock: then a commits.
            #expect(await waitUntil(timeout: 120) {
                (try? watcher.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()", []).isEmpty == false) ?? false
            })
            _ = try x.execute("COMMIT", [])
            #expect(await waitUntil(timeout: 120) { done.withLock { $0 != nil } })
            try done.withLock { $0 }?.get()
        }
        let recording = Locked(DeliveryRecording())
        try await whileOpen([
            #"UPDATE messages SET dlr_status = 'DELIVRD', dlr_at = 5 WHERE job_id = 'j5' AND "row" = 2 AND dlr_status IS NULL"#,
            "INSERT INTO delivery_counts(job_id, batch, status, n) VALUES('j5', 1, 'DELIVRD', 1)",
        ]) {
            let got = try b.recordDeliveries([DeliveryReport(messageId: "m2", custom: "", status: "DELIVRD", at: 5)], receivedAt: 6)
            recording.withLock { $0 = got }
        }
        #expect(recording.withLock { ($0.recorded, $0.repeated) } == (0, 1))
        #expect(try b.finalDeliveryCounts(jobID: "j5")[1] == ["DELIVRD": 1])
        // Both expire the job past dlr.stop_after: row 3 is counted EXPIRED-UNKNOWN once.
        try await whileOpen([
            "SELECT 1 FROM jobs WHERE id = 'j5' FOR UPDATE",
            #"UPDATE messages SET dlr_status = 'EXPIRED-UNKNOWN' WHERE job_id = 'j5' AND "row" = 3"#,
            "INSERT INTO delivery_counts(job_id, batch, status, n) VALUES('j5', 1, 'EXPIRED-UNKNOWN', 1)",
        ]) { _ = try b.expireDeliveries(jobID: "j5", at: 9) }
        #expect(try b.finalDeliveryCounts(jobID: "j5")[1] == ["DELIVRD": 1, "EXPIRED-UNKNOWN": 1])
    }

    @Test("one rate budget for every worker on an account: a start taken by one makes the other wait, a pause by one pauses both")
    func sharedRateBudget() throws {
        let (a, b) = try twoWorkers()
        // One start a minute: the second worker must wait for the first's.
        #expect(try a.takeStart(account: "acct", kind: "send", perMinute: 1) == 0)
        let wait = try b.takeStart(account: "acct", kind: "send", perMinute: 1)
        #expect(wait > 0 && wait <= 60)
        // Another kind (lookups) and another account have budgets of their own.
        #expect(try b.takeStart(account: "acct", kind: "status", perMinute: 1) == 0)
        #expect(try b.takeStart(account: "other", kind: "send", perMinute: 1) == 0)
        // A 429 seen by one worker pauses the other.
        try a.pauseStarts(account: "paused", kind: "send", seconds: 300)
        #expect(try b.takeStart(account: "paused", kind: "send", perMinute: 1000) > 200)
        // One row per account and kind, whatever the rate: a start costs the same at 100,000 a minute.
        for i in 0..<200 {
            while try (i % 2 == 0 ? a : b).takeStart(account: "fast", kind: "send", perMinute: 100_000) > 0 {}
        }
        #expect(try a.postgres.query("SELECT COUNT(*) FROM rate_budget WHERE account = 'fast'", []).first?.int64(0) == 1)
    }

    @Test("the password comes from the environment and never shows; a URL with one in it is refused by the config")
    func password() throws {
        #expect(PostgresDatabase.redacted("postgres://u:secret@h:5432/db").contains("secret") == false)
        let e = #expect(throws: ConfigError.self) {
            try ConfigLoader.parse(yaml: "state:\n  url: postgres://u:secret@h:5432/db\n", source: "p.yaml")
        }
        #expect(e?.description.contains("secret") == false)
        #expect(e?.description.contains("password_env") == true)
        // An unreachable server: the error names where, never a password.
        let refused = #expect(throws: LedgerError.self) {
            try PostgresLedger(url: "postgres://smsbatch@127.0.0.1:1/none", password: "hunter2", reconnectFor: 0)
        }
        #expect(refused?.description.contains("127.0.0.1:1") == true)
        #expect(refused?.description.contains("hunter2") == false)
    }
}
