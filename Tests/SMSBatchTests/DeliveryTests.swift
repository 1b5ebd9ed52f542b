import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// `GET sandbox/delivered` of a sandbox: counts per status, pushes made, pushes dropped.
func sandboxDelivered(_ endpoint: String, token: String) async throws -> (counts: [String: Int], pushed: Int, pushFailures: Int, pushQueue: Int, pushRetries: Int) {
    let client = ProviderClient(endpoint: endpoint, token: token, auth: .header, timeout: 10, concurrency: 1)
    guard case .success(let reply) = await client.get("sandbox/delivered"), let json = JSONValue.parse(reply.body),
          case .object(let pairs)? = json["counts"]
    else { throw SandboxAnswerError() }
    var counts: [String: Int] = [:]
    for (status, n) in pairs { counts[status] = n.text.flatMap { Int($0) } ?? -1 }
    return (counts, json["pushed"]?.text.flatMap { Int($0) } ?? -1, json["push_failures"]?.text.flatMap { Int($0) } ?? -1,
            json["push_queue"]?.text.flatMap { Int($0) } ?? -1, json["push_retries"]?.text.flatMap { Int($0) } ?? -1)
}

struct SandboxAnswerError: Error {}

/// A puller for jobs sent to `provider`, on the ledger in `config.statePath`.
func puller(_ provider: TestProvider, _ config: PipelineConfig, ledger: any Ledger, time: any MonotonicClock = RealClock()) -> DeliveryPuller {
    DeliveryPuller(config: config, ledger: ledger, endpoint: ProviderEndpoint(url: provider.server.endpoint, token: provider.token, name: "test"),
                   progress: SilentProgress(), time: time, seed: 3)
}

@Suite("Delivery reports pulled from the provider (SPEC §11)")
struct DeliveryPullTests {
    @Test("20,000 rows sent, then pulled: every submitted row has exactly one final status, the counts per status are the sandbox's own, and pulling again records nothing")
    func pullEverything() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.dlrDelay = 0; $0.rateLimit = 0; $0.seed = 11 }
        let (path, _) = try generated(GeneratorOptions(rows: 20_000, seed: 31, invalidShare: 0.01, duplicateShare: 0.01), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.requestsPerMinute = 0
        config.send.statusRequestsPerMinute = 0
        let sent = try await sendJob(path, config: config, in: dir)
        #expect(sent.summary.status == .completed)
        let submitted = sent.summary.submitted
        #expect(submitted > 19_000)

        let ledger = try SQLiteLedger(path: config.statePath)
        let first = try await puller(provider, config, ledger: ledger).pull(now: testNow)
        #expect(first.jobs == [sent.summary.job])
        #expect(first.recording.recorded == submitted)
        #expect(first.recording.conflicts.isEmpty)
        #expect(try ledger.awaitingDelivery(jobID: sent.summary.job).isEmpty)
        let deliveries = try ledger.deliveries(jobID: sent.summary.job)
        #expect(deliveries.count == submitted)

        // The ledger's counts per status are the sandbox's.
        let sandbox = try await sandboxDelivered(provider.server.endpoint, token: provider.token)
        let counts = try ledger.deliveryCounts(jobID: sent.summary.job)
        #expect(counts.total == sandbox.counts)
        #expect(sandbox.counts.keys.contains("DELIVRD") && sandbox.counts.count > 3, "a realistic mix of statuses")

        // The result files say the same.
        let rows = sent.batchRows
        let dlr = rows.column("dlr_status")
        #expect(dlr.filter { $0 == "DELIVRD" }.count == counts.total["DELIVRD"])
        #expect(!dlr.contains("AWAITING-DLR"))
        #expect(zip(rows.column("status"), dlr).allSatisfy { $0 == "submitted" ? !$1.isEmpty : $1.isEmpty })
        let delivery = sent.summaryJSON["delivery"] as? [String: Any]
        #expect((delivery?["delivered"] as? Int ?? 0) + (delivery?["failed"] as? Int ?? 0) == submitted)
        #expect(delivery?["pending"] as? Int == 0)

        // delivery-failed.csv: the failed rows in the input's own columns, with their cells.
        let failedFile = CSVTable(path: sent.dir + "/delivery-failed.csv")
        let input = CSVTable(path: path)
        #expect(failedFile.header == input.header + ["dlr_status", "dlr_at", "source_row"])
        let failedRows = deliveries.filter { $0.value.outcome.isFailure }
        #expect(failedFile.rows.count == failedRows.count)
        #expect(failedFile.rows.count == delivery?["failed"] as? Int)
        for r in failedFile.rows.prefix(50) {
            let row = Int(r.last ?? "") ?? 0
            // Row n of the file is record n - 1 after the header (no blank lines in generated files).
            #expect(Array(r.prefix(input.header.count)) == input.rows[row - 2])
            #expect(r[input.header.count] == failedRows[row]?.status)
        }

        // Again: nothing awaits, nothing is asked, nothing changes.
        let again = try await puller(provider, config, ledger: ledger).pull(now: testNow)
        #expect(again.jobs.isEmpty && again.requests == 0 && again.recording.recorded == 0)
        let forced = try await puller(provider, config, ledger: ledger).pull(jobIDs: [sent.summary.job], now: testNow)
        #expect(forced.recording.recorded == 0)
        #expect(try ledger.deliveries(jobID: sent.summary.job) == deliveries)
    }

    @Test("lookups never exceed status_requests_per_minute in any 60 s, and a 429 storm is waited out (virtual clock)")
    func lookupRate() async throws {
        let dir = TempDir()
        let clock = VirtualClock()
        // The provider allows 6 requests a minute, sends included.
        let provider = try TestProvider { $0.dlrDelay = 0; $0.rateLimit = 6; $0.clock = clock }
        let (path, _) = try generated(GeneratorOptions(rows: 300, seed: 5, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.nodesPerRequest = 20
        config.send.maxAttempts = 20
        let sent = try await sendJob(path, config: config, in: dir, time: clock)
        #expect(sent.summary.submitted == 300)
        let ledger = try SQLiteLedger(path: config.statePath)

        // Within the account's limit: 4 a minute, fewer than the provider allows.
        config.send.statusRequestsPerMinute = 4
        let calm = puller(provider, config, ledger: ledger, time: clock)
        let before = provider.server.arrivals.count
        let groups = Set(try ledger.awaitingDelivery(jobID: sent.summary.job).compactMap(\.groupId))
        #expect(groups.count >= 15, "one lookup per request's group, more than fit in a minute")
        let result = try await calm.pull(now: testNow)
        #expect(result.recording.recorded == 300)
        let starts = await calm.limiter.startLog
        #expect(starts.count == result.requests)
        for (i, start) in starts.enumerated() { #expect(starts[i...].prefix { $0 - start < 60 }.count <= 4) }
        #expect(provider.server.arrivals.count - before == result.requests, "no lookup met a 429")

        // A storm: the client is set for 600 a minute, the provider allows 6.
        _ = try await sendJob(path, config: config, in: dir, now: testNow + 86_400, force: true, time: clock)
        config.send.statusRequestsPerMinute = 600
        let eager = puller(provider, config, ledger: ledger, time: clock)
        let storm = try await eager.pull(now: testNow + 86_400)
        #expect(storm.recording.recorded == 300)
        #expect(storm.requests > 15, "some lookups met a 429 and were asked again")
        #expect(try ledger.jobsAwaitingDelivery().isEmpty)
    }
}

extension DeliveryPullTests {
    @Test("run --wait-dlr's time limit holds inside a round of lookups: a slow round stops when time is up (virtual clock)")
    func waitStopsInTime() async throws {
        let dir = TempDir()
        let clock = VirtualClock()
        let provider = try TestProvider { $0.dlrDelay = 0; $0.rateLimit = 0; $0.clock = clock }
        let (path, _) = try generated(GeneratorOptions(rows: 400, seed: 8, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.nodesPerRequest = 10
        config.send.requestsPerMinute = 0
        let sent = try await sendJob(path, config: config, in: dir, time: clock)
        #expect(sent.summary.submitted == 400)
        let ledger = try SQLiteLedger(path: config.statePath)
        // 40 groups at 6 lookups a minute: a round takes over 6 minutes; the limit is 60 s.
        config.send.statusRequestsPerMinute = 6
        let slow = puller(provider, config, ledger: ledger, time: clock)
        let started = clock.now()
        let result = try await slow.pullUntilFinal(jobID: sent.summary.job, timeout: 60, now: testNow)
        #expect(clock.now() - started < 70, "waited \(clock.now() - started) s of a 60 s limit")
        #expect(result.requests <= 7 && result.requests > 0)
        #expect(try !ledger.awaitingDelivery(jobID: sent.summary.job).isEmpty, "stopped before the round was done")
        // Without a limit the same puller finishes the round.
        let rest = try await slow.pull(now: testNow)
        #expect(rest.requests > 30)
        #expect(try ledger.awaitingDelivery(jobID: sent.summary.job).isEmpty)
    }
}

@Suite("Delivery reports: expiry, drain, jobs")
struct DeliveryLifecycleTests {
    @Test("past dlr.stop_after, rows without a final status are EXPIRED-UNKNOWN in the batch files, summary.json and jobs, never delivered, and are no longer asked for")
    func expiry() async throws {
        let dir = TempDir()
        // Reports take an hour: none is final when the job expires.
        let provider = try TestProvider { $0.dlrDelay = 3600; $0.rateLimit = 0 }
        let (path, _) = try generated(GeneratorOptions(rows: 500, seed: 8, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        let sent = try await sendJob(path, config: config, in: dir)
        let ledger = try SQLiteLedger(path: config.statePath)
        let record = try #require(try ledger.job(id: sent.summary.job))
        let deadline = DeliveryOutputs.deadline(job: record, plan: try ledger.plan(jobID: record.id), stopAfter: config.dlr.stopAfter)
        #expect(deadline - (record.finishedAt ?? 0) == 72 * 3600)

        let before = try await puller(provider, config, ledger: ledger).pull(now: deadline - 1)
        #expect(before.requests > 0 && before.recording.recorded == 0 && before.expiredJobs.isEmpty)
        #expect(Set(sent.batchRows.column("dlr_status")) == ["AWAITING-DLR"])

        let after = try await puller(provider, config, ledger: ledger).pull(now: deadline)
        #expect(after.expiredJobs == [record.id])
        #expect(after.requests == 0, "an expired job is not asked for")
        #expect(Set(sent.batchRows.column("dlr_status")) == ["EXPIRED-UNKNOWN"])
        #expect(Set(sent.batchRows.column("dlr_code")) == ["expired-unknown"])
        let delivery = sent.summaryJSON["delivery"] as? [String: Any]
        #expect(delivery?["delivered"] as? Int == 0)
        #expect(delivery?["expired_unknown"] as? Int == 500)
        let view = try JobView.load(record, from: ledger, batches: true)
        #expect(view.delivery.total == ["EXPIRED-UNKNOWN": 500])
        // Expired is final: a report arriving later changes nothing and is a conflict; the
        // job no longer awaits anything.
        #expect(try ledger.jobsAwaitingDelivery().isEmpty)
        let late = try ledger.recordDeliveries([DeliveryReport(messageId: "", custom: "\(record.id):2", status: "DELIVRD", at: deadline)],
                                               receivedAt: deadline + 1)
        #expect(late.recorded == 0 && late.conflicts.count == 1)
        #expect(try ledger.deliveries(jobID: record.id)[2]?.status == "EXPIRED-UNKNOWN")
        #expect(try ledger.finalDeliveryCounts(jobID: record.id).values.reduce(0) { $0 + ($1["EXPIRED-UNKNOWN"] ?? 0) } == 500)
        #expect(JobListing.detail(view).contains("delivery     delivered 0, failed 0, pending 0, expired-unknown 500"))
    }

    @Test("drain sends the inbox, then pulls the reports itself: batch files, summary.json and jobs show delivered and failed")
    func drainPulls() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.dlrDelay = 0; $0.rateLimit = 0; $0.dlrFailRate = 0.2 }
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.watch.settle = 0
        try FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
        _ = try generated(GeneratorOptions(rows: 1_000, seed: 9, invalidShare: 0, duplicateShare: 0), in: dir, name: "spool/inbox/a.csv")
        var options = RunOptions.inProcess()
        options.now = Int64(Date().timeIntervalSince1970)
        let runner = try SpoolRunner(config: config, options: options, progress: SilentProgress())
        #expect(try await runner.drain() == .ok)
        let ledger = try SQLiteLedger(path: config.statePath)
        let job = try #require(try ledger.jobs().first)
        #expect(try ledger.awaitingDelivery(jobID: job.id).isEmpty)
        let counts = try ledger.deliveryCounts(jobID: job.id).outcomes()
        #expect((counts[.delivered] ?? 0) + (counts[.failed] ?? 0) == 1_000)
        #expect((counts[.failed] ?? 0) > 100, "about a fifth fail")
        var summary = JobSummary()
        summary.job = job.id
        let out = JobOutput(result: JobResult(summary: summary), dir: try #require(job.outputDir))
        #expect(out.batchRows.column("dlr_status").filter { $0 == "DELIVRD" }.count == counts[.delivered])
        #expect(CSVTable(path: out.dir + "/delivery-failed.csv").rows.count == counts[.failed])
        let table = JobListing.table([try JobView.load(job, from: ledger, batches: false)])
        #expect(table.contains("DELIVERED") && table.contains("DLR_FAILED"))
        #expect(table.contains(grouped(counts[.delivered] ?? 0)))
    }
}

@Suite("Delivery columns: a batch file rewritten keeps every byte of its other cells")
struct DeliveryColumnsTests {
    @Test("spaces around a message, quotes, commas and line breaks survive the rewrite; only the delivery columns change")
    func rewriteKeepsCells() throws {
        let dir = TempDir()
        let header = "row,recipient,sender,product,status,message_id,http_status,error_code,error_message,attempts,segments,encoding,scheduled_at,dlr_status,dlr_at,dlr_code,message\n"
        let rows = "2,+919876543210,MOBTXT,T,submitted,m2,200,,,1,1,gsm7,,AWAITING-DLR,,pending, Hi there \n"
            + "3,+919876543211,MOBTXT,T,submitted,m3,200,,,1,1,gsm7,,AWAITING-DLR,,pending,\"a, \"\"b\"\"\nc\"\n"
            + "4,+919876543212,MOBTXT,T,failed,,422,E,bad,1,1,gsm7,,,,,\tx\t\n"
        let path = dir.write("batch-0001.csv", header + rows)
        var cells: DeliveryFailedFile.BatchCells = [:]
        try DeliveryOutputs.rewriteBatch(path, deliveries: [2: RowDelivery(status: "DELIVRD", at: 1_795_667_500)], expired: false,
                                         bom: false, keep: [], into: &cells)
        let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        #expect(text == header
            + "2,+919876543210,MOBTXT,T,submitted,m2,200,,,1,1,gsm7,,DELIVRD,2026-11-26T04:31:40Z,delivered, Hi there \n"
            + "3,+919876543211,MOBTXT,T,submitted,m3,200,,,1,1,gsm7,,AWAITING-DLR,,pending,\"a, \"\"b\"\"\nc\"\n"
            + "4,+919876543212,MOBTXT,T,failed,,422,E,bad,1,1,gsm7,,,,,\tx\t\n")
    }
}

@Suite("Sandbox sms/status pages (SPEC §11)")
struct StatusPagesTests {
    @Test("a group of 250 is answered 100 a page with links and meta; the puller follows meta, or links when there is no meta")
    func pages() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.dlrDelay = 0; $0.rateLimit = 0 }
        // 250 rows of one product and time: one request, one group.
        let rows = (0..<250).map { "9198765\(String(format: "%05d", $0)),MOBTXT,Hello \($0),T" }
        let path = dir.write("one-group.csv", "recipient,sender,message,product\n" + rows.joined(separator: "\n") + "\n")
        var config = provider.config()
        config.watch.root = dir.file("spool")
        let sent = try await sendJob(path, config: config, in: dir)
        #expect(sent.summary.submitted == 250)
        let ledger = try SQLiteLedger(path: config.statePath)
        let group = try #require(try ledger.awaitingLookups(jobID: sent.summary.job).groups.first)
        let client = ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: .header, timeout: 10, concurrency: 1)
        func page(_ n: Int) async throws -> JSONValue {
            try #require(JSONValue.parse(try await client.get("sms/status", query: [("group_id", group), ("page", String(n))]).get().body))
        }
        let first = try await page(1), last = try await page(3)
        #expect(DeliveryPuller.reports(first).count == 100 && DeliveryPuller.reports(last).count == 50)
        #expect(first["meta"]?["last_page"] == .int(3) && first["meta"]?["total"] == .int(250))
        #expect(first["links"]?["next"]?.text?.contains("page=2") == true && first["links"]?["prev"] == .null)
        #expect(last["links"]?["next"] == .null)
        #expect(DeliveryPuller.reports(first).allSatisfy { $0.isFinal && $0.at != nil && !$0.messageId.isEmpty })
        #expect(DeliveryPuller.hasNextPage(first, page: 1) && !DeliveryPuller.hasNextPage(last, page: 3))
        // Without meta, links decide.
        #expect(DeliveryPuller.hasNextPage(.object([("links", .object([("next", .string("/x?page=2"))]))]), page: 1))
        #expect(!DeliveryPuller.hasNextPage(.object([("links", .object([("next", .null)]))]), page: 1))
    }
}
