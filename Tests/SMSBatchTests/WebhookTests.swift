import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox
@testable import SMSBatchWebhook

private let secret = "whsec-" + UUID().uuidString

/// A webhook server in this process on a free port, with an inbox on `ledger`.
private func webhook(_ ledger: any Ledger, _ configure: (inout WebhookLimits) -> Void = { _ in }) throws -> WebhookServer {
    var limits = WebhookLimits()
    configure(&limits)
    let inbox = DeliveryInbox(ledger: ledger, config: PipelineConfig(), refreshEvery: 0.2)
    return try WebhookServer(listen: "127.0.0.1", port: 0, secret: secret, inbox: inbox, limits: limits)
}

/// A POST to the webhook on a fresh connection.
private func post(_ port: Int, _ body: [UInt8], token: String? = secret, headers: [String] = []) throws -> RawReply? {
    let c = try RawConnection(port: UInt16(port))
    var head = "POST /dlr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
    if let token { head += "Authorization: Bearer \(token)\r\n" }
    for h in headers { head += h + "\r\n" }
    c.send(Array((head + "\r\n").utf8) + body)
    return c.response()
}

private func report(_ id: String, custom: String = "", status: String = "DELIVRD") -> [UInt8] {
    Array(#"{"id":"\#(id)","mobile":"919876543210","status":"\#(status)","credits":"1.0000","units":"1","deliv_at":"1795667500","sent_at":"1795667400","submit_at":"1795667400","deliv_time":"2026-11-26 10:01:40","sent_time":"2026-11-26 10:00:00","submit_time":"2026-11-26 10:00:00","cid":"\#(custom)","custom":"\#(custom)",}"#.utf8)
}

/// A ledger with job `j` whose rows 2–6 were submitted as messages m2…m6.
private func ledgerWithMessages(_ dir: TempDir) throws -> SQLiteLedger {
    let ledger = try SQLiteLedger(path: dir.file("state.sqlite"))
    // Sent now: its reports are not past dlr.stop_after for the inbox's real clock.
    let now = Int64(Date().timeIntervalSince1970)
    try ledger.createJob(JobRecord(id: "j", input: "j.csv", sha256: "aa", status: .completed, clock: now, startedAt: now))
    let r = try ledger.recordIntent(jobID: "j", batch: 1, rows: Array(2...6))
    try ledger.recordAnswer(requestID: r, httpStatus: 200, outcomes: (2...6).map {
        RequestOutcome(row: $0, submitted: true, messageId: "m\($0)", httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1)
    })
    return ledger
}

@Suite("Webhook: pushed delivery reports (SPEC §11)")
struct WebhookTests {
    @Test("bad input gets its documented answer and the server stays up: wrong token 401, truncated JSON or NUL bytes 400, 10 MB 413, huge headers 431; duplicates and unknown ids are recorded once or kept")
    func badInput() throws {
        let dir = TempDir()
        let ledger = try ledgerWithMessages(dir)
        let server = try webhook(ledger)
        defer { server.inbox.stop(); server.stop() }
        let port = server.port

        // The provider's own sample: numbers as strings, a trailing comma.
        #expect(try post(port, report("m2"))?.status == 200)
        #expect(try ledger.deliveries(jobID: "j")[2] == RowDelivery(status: "DELIVRD", at: 1_795_667_500))
        // The same push twice: recorded once.
        #expect(try post(port, report("m2"))?.status == 200)
        #expect(try post(port, report("m2"), token: "wrong")?.status == 401)
        #expect(try post(port, report("m3"), token: nil)?.status == 401)
        #expect(try post(port, Array(report("m3").prefix(40)))?.status == 400)
        #expect(try post(port, Array(#"{"id":"m3","status":"DELIV\#u{0}RD"}"#.utf8))?.status == 400)
        #expect(try post(port, [0, 0, 0, 0])?.status == 400)
        #expect(try post(port, Array(#"{"id":"m3"}"#.utf8))?.status == 400, "no status")
        let huge = try #require(try post(port, [UInt8](repeating: 0x20, count: 10 << 20)))
        #expect(huge.status == 413)
        #expect(try post(port, report("m3"), headers: ["X-Padding: " + String(repeating: "a", count: 40_000)])?.status == 431)
        // Not ours (another system on the account, or a job not recorded yet): kept.
        #expect(try post(port, report("elsewhere-1", custom: "other:9"))?.status == 200)
        // A list, matched by custom.
        let list = Array("[".utf8) + report("", custom: "j:4", status: "ABSENT-SUB") + Array(",".utf8) + report("m5") + Array("]".utf8)
        #expect(try post(port, list)?.status == 200)
        // A list with one unreadable item: the others are recorded, not lost with it.
        let mixed = Array("[".utf8) + Array(#"{"id":"m6"}"#.utf8) + Array(",".utf8) + report("m6", status: "UNDELIV") + Array("]".utf8)
        #expect(try post(port, mixed)?.status == 200)
        // Times that are no times (NaN, huge, the lowest Int64) are kept as none, not trapped on.
        for t in ["nan", "1e30", "-9223372036854775808"] {
            let odd = Array(#"{"id":"zz-\#(t)","status":"DELIVRD","deliv_at":"\#(t)"}"#.utf8)
            #expect(try post(port, odd)?.status == 200)
        }
        // Still up.
        #expect(try post(port, report("m3"))?.status == 200)

        let d = try ledger.deliveries(jobID: "j")
        #expect(d.mapValues(\.status) == [2: "DELIVRD", 3: "DELIVRD", 4: "ABSENT-SUB", 5: "DELIVRD", 6: "UNDELIV"])
        #expect(try ledger.unmatchedCount() == 4)
        let totals = server.inbox.snapshot
        #expect(totals.recording.recorded == 5)
        #expect(totals.recording.repeated == 1)
    }

    @Test("300 clients that send half a request and stall: others are still answered, and the stalled ones are cut off after the header timeout")
    func slowClients() throws {
        let dir = TempDir()
        let ledger = try ledgerWithMessages(dir)
        let server = try webhook(ledger) { $0.headerTimeout = 0.5; $0.bodyTimeout = 0.5; $0.maxConnectionsPerAddress = 1000 }
        defer { server.inbox.stop(); server.stop() }
        var stalled: [RawConnection] = []
        for k in 0..<300 {
            let c = try RawConnection(port: UInt16(server.port))
            // Half of them stop inside the headers, half inside the body.
            c.send(k % 2 == 0 ? "POST / HTTP/1.1\r\nHost: x\r\nAuthor" : "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(secret)\r\nContent-Length: 500\r\n\r\n{\"id\":")
            stalled.append(c)
        }
        #expect(try post(server.port, report("m6"))?.status == 200)
        // Each stalled connection is closed by the server (RawConnection reads for up to 5 s).
        #expect(stalled.allSatisfy { $0.isClosedByPeer() })
        #expect(try ledger.deliveries(jobID: "j")[6]?.status == "DELIVRD")
    }

    @Test("connections from one address beyond its limit are refused with 503; the others are served")
    func connectionLimit() throws {
        let dir = TempDir()
        let ledger = try ledgerWithMessages(dir)
        let server = try webhook(ledger) { $0.maxConnections = 1000; $0.maxConnectionsPerAddress = 20 }
        defer { server.inbox.stop(); server.stop() }
        var held: [RawConnection] = []
        for _ in 0..<20 { held.append(try RawConnection(port: UInt16(server.port))) }
        // Wait until the server has counted them: each answers a health check.
        for c in held {
            c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(c.response()?.status == 200)
        }
        #expect(try post(server.port, report("m6"))?.status == 503)
        held.removeAll()
        #expect(eventually(timeout: 5) { (try? post(server.port, report("m6")))??.status == 200 })
    }
}

/// Each row's recorded status against the sandbox's own for the same custom: the rows that
/// differ or have none, by custom.
private func mismatches(_ ledger: any Ledger, job: String, _ sandbox: SandboxServer) throws -> [String] {
    let expected = sandbox.finalStatuses.filter { $0.key.hasPrefix(job + ":") }
    let recorded = try ledger.deliveries(jobID: job)
    var bad: [String] = []
    for (custom, status) in expected {
        let row = Int(custom.split(separator: ":").last ?? "") ?? -1
        if recorded[row]?.status != status { bad.append(custom) }
    }
    if recorded.count != expected.count { bad.append("\(recorded.count) recorded, \(expected.count) expected") }
    return bad
}

/// A free loopback port below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
/// for a server that is stopped and started again on the same port: no port-0 server or
/// outgoing connection elsewhere in the test run can take it in between.
func portOutsideEphemeralRange(seed: UInt64) throws -> UInt16 {
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
        .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) } ?? []
    let low = min(range.first ?? 32768, 32768)
    var rng = SplitMix64(seed: seed)
    for _ in 0..<200 {
        let port = UInt16(10_000 + Int(rng.next() % UInt64(max(1, low - 10_000))))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if bound == 0 { return port }
    }
    throw POSIXError(.EADDRINUSE)
}

@Suite("Webhook process: pushes under kills, pushes and pulls together", .tags(.process), .notInFastRuns)
struct WebhookProcessTests {
    @Test("the receiver SIGKILLed 5 times during a push storm with 10% duplicate pushes: every row's final status is the sandbox's; then push and pull together on a second job: the same")
    func killsDuringPushStorm() async throws {
        let dir = TempDir()
        // Restarted on one port: one below the ephemeral range, which no other socket of the
        // test run (a server on port 0, an outgoing connection) can take while it is down.
        let port = try portOutsideEphemeralRange(seed: 11)
        dir.write("pipeline.yaml", "state:\n  path: \(dir.file("state.sqlite"))\ndlr:\n  webhook_secret_env: WH_SECRET\n")
        func start() async throws -> Background {
            let b = try Background(["webhook", "--port", String(port)], cwd: dir.path, env: ["WH_SECRET": secret])
            #expect(await waitUntil(timeout: 60) { b.stdout.contains("listening") }, "the receiver did not start: \(b.stderr)")
            return b
        }
        var receiver = try await start()
        let provider = try TestProvider {
            $0.dlrDelay = 0.5; $0.dlrDupRate = 0.1; $0.webhook = "http://127.0.0.1:\(port)/dlr"; $0.webhookSecret = secret
            $0.webhookRetry = 3; $0.seed = 77; $0.rateLimit = 0
            $0.webhookConcurrency = 4
        }
        // The test lets the pushes out in portions (below); none before.
        let pusher = try #require(provider.server.core.pusher)
        pusher.allow(0)
        let (path, _) = try generated(GeneratorOptions(rows: 10_000, seed: 71, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.state.path = dir.file("state.sqlite")
        config.dedupe.window = 0
        config.send.requestsPerMinute = 0
        config.send.statusRequestsPerMinute = 0
        config.send.nodesPerRequest = 200
        // Sending in the background: its reports are pushed while it still sends.
        // Jobs dated now: the receiver's clock is the real one, and dlr.stop_after counts from them.
        let now = Int64(Date().timeIntervalSince1970)
        let first = Task { [config] in try await sendJob(path, config: config, in: dir, now: now) }
        // Five kills during the storm. The test lets the first pushes out in portions, so the
        // storm cannot end before the fifth kill however slow the machine: each kill comes once
        // 20 pushes of a portion were answered, and 50 more are let out while the receiver is
        // dead, so pushes fail and the provider queues them again (retries are never held). The receiver comes back on the same
        // port once a push has failed.
        var rng = SplitMix64(seed: 5)
        for _ in 0..<5 {
            let before = pusher.counts
            pusher.allowMore(600)
            #expect(await waitUntil(timeout: 120) { pusher.counts.pushed > before.pushed + 20 }, "pushes: \(pusher.counts), receiver: \(receiver.stderr)")
            try await Task.sleep(for: .microseconds(rng.next() % 50_000))
            receiver.signal(SIGKILL)
            _ = receiver.wait(timeout: 10)
            pusher.allowMore(50)
            #expect(await waitUntil(timeout: 60) { pusher.counts.retries > before.retries })
            #expect(pusher.counts.queued > 0, "pushes remain after the kill")
            receiver = try await start()
        }
        pusher.allow(nil)
        let sent = try await first.value
        #expect(sent.summary.submitted == 10_000)
        let ledger = try SQLiteLedger(path: config.statePath)
        func pushesDone() async -> Bool {
            guard let d = try? await sandboxDelivered(provider.server.endpoint, token: provider.token) else { return false }
            return d.pushed > 0 && d.pushQueue == 0
        }
        #expect(await waitUntil(timeout: 180) { await pushesDone() }, "the sandbox still has pushes to make")
        // Every push was answered or retried; none given up.
        let sandbox = try await sandboxDelivered(provider.server.endpoint, token: provider.token)
        #expect(sandbox.pushFailures == 0)
        #expect(sandbox.pushRetries > 0, "the kills made pushes fail, and the provider retried them")
        #expect(sandbox.pushed > 10_500, "about 10% of the reports were pushed twice")
        // The receiver matches reports that came before their send was recorded every 10 s.
        #expect(await waitUntil(timeout: 120) { (try? ledger.awaitingDelivery(jobID: sent.summary.job).isEmpty) == true })
        #expect(try mismatches(ledger, job: sent.summary.job, provider.server).isEmpty)

        // Push and pull together on a second job (the same file again, forced).
        let again = Task { [config] in try await sendJob(path, config: config, in: dir, now: now + 60, force: true) }
        let second = try await again.value
        #expect(second.summary.submitted == 10_000)
        let pulled = try await puller(provider, config, ledger: ledger).pull(jobIDs: [second.summary.job], now: now + 60)
        #expect(pulled.recording.conflicts.isEmpty)
        #expect(await waitUntil(timeout: 120) { (try? ledger.awaitingDelivery(jobID: second.summary.job).isEmpty) == true })
        #expect(try mismatches(ledger, job: second.summary.job, provider.server).isEmpty)

        receiver.signal(SIGTERM)
        #expect(receiver.wait(timeout: 30) == 0)
        #expect(receiver.stderr.contains("webhook: stopped"))
    }
}

@Suite("CLI: dlr, webhook and run --wait-dlr", .tags(.process), .notInFastRuns)
struct DeliveryCLITests {
    @Test("webhook without its secret exits 78 naming the variable; dlr with no ledger or an unknown job exits 66")
    func refusals() throws {
        let dir = TempDir()
        let hook = try smsbatch(["webhook", "--port", "0"], cwd: dir.path, env: ["SMSBATCH_WEBHOOK_SECRET": ""])
        #expect(hook.status == 78)
        #expect(hook.stderr.contains("SMSBATCH_WEBHOOK_SECRET"))
        let none = try smsbatch(["dlr"], cwd: dir.path)
        #expect(none.status == 66)
        #expect(none.stderr.contains("no ledger"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("spool")), "dlr never creates a ledger")
    }

    @Test("run --wait-dlr against the built-in sandbox prints the job's delivery and fills its result files")
    func waitForReports() throws {
        let dir = TempDir()
        _ = try generated(GeneratorOptions(rows: 300, seed: 12, invalidShare: 0, duplicateShare: 0), in: dir, name: "a.csv")
        let r = try smsbatch(["run", "--wait-dlr", "60s", "--out", "out", "a.csv"], cwd: dir.path)
        #expect(r.status == 0)
        #expect(r.stdout.contains("delivery: "))
        let summary = jsonFile(dir.file("out/summary.json"))
        let delivery = summary["delivery"] as? [String: Any]
        #expect((delivery?["delivered"] as? Int ?? 0) + (delivery?["failed"] as? Int ?? 0) == 300)
        #expect(delivery?["pending"] as? Int == 0)
        #expect(!CSVTable(path: dir.file("out/batches/batch-0001.csv")).column("dlr_status").contains("AWAITING-DLR"))
    }

    @Test("run against a standalone sandbox, then dlr in a later process: every row final, one line per job; again: nothing new")
    func pullLater() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--dlr-delay", "0", "--rate-limit", "0"])
        let dir = TempDir()
        dir.write("pipeline.yaml", "send:\n  endpoint: \(sandbox.endpoint)\n  requests_per_minute: 100000\n")
        _ = try generated(GeneratorOptions(rows: 2_000, seed: 13, invalidShare: 0, duplicateShare: 0), in: dir, name: "a.csv")
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        #expect(try smsbatch(["run", "--out", "out", "a.csv"], cwd: dir.path, env: env).status == 0)
        let pulled = try smsbatch(["dlr"], cwd: dir.path, env: env)
        #expect(pulled.status == 0)
        #expect(pulled.stdout.contains("delivered "))
        #expect(pulled.stderr.contains("2000 final statuses recorded now"))
        let jobs = try smsbatch(["jobs"], cwd: dir.path, env: env)
        #expect(jobs.stdout.contains("DELIVERED"))
        let again = try smsbatch(["dlr"], cwd: dir.path, env: env)
        #expect(again.status == 0)
        #expect(again.stdout.contains("no job awaits delivery reports"))
        let unknown = try smsbatch(["dlr", "nosuchjob"], cwd: dir.path, env: env)
        #expect(unknown.status == 66)
    }

    @Test("dlr with a token the provider refuses exits 77 and records nothing")
    func refusedToken() throws {
        // Reports take an hour: the rows still await theirs when dlr asks.
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--dlr-delay", "3600"])
        let dir = TempDir()
        dir.write("pipeline.yaml", "send:\n  endpoint: \(sandbox.endpoint)\n")
        _ = try generated(GeneratorOptions(rows: 50, seed: 14, invalidShare: 0, duplicateShare: 0), in: dir, name: "a.csv")
        #expect(try smsbatch(["run", "--out", "out", "a.csv"], cwd: dir.path, env: ["SMSBATCH_TOKEN": sandbox.token]).status == 0)
        let refused = try smsbatch(["dlr"], cwd: dir.path, env: ["SMSBATCH_TOKEN": "wrong"])
        #expect(refused.status == 77)
        #expect(refused.stderr.contains("refused the credentials"))
        #expect(!refused.stderr.contains("wrong"), "the token is never shown")
    }
}
