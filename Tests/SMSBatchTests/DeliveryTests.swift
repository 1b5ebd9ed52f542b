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
