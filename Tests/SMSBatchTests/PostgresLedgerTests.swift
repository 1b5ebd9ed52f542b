import Foundation
import Testing
@testable import SMSBatch

/// Two workers on one database: two ledgers, as two hosts would open it.
private func twoWorkers(lease: Int = 3) throws -> (PostgresLedger, PostgresLedger) {
    let url = try PostgresServer.start().createDatabase()
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
        // Never more than perMinute starts in 60 s: the 11th of 10 a minute waits a minute.
        for _ in 0..<10 {
            while try a.takeStart(account: "burst", kind: "send", perMinute: 600) > 0 { usleep(20_000) }
        }
        #expect(try b.takeStart(account: "burst", kind: "send", perMinute: 10) > 50)
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
