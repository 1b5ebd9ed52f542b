import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// Rows for the sandbox: product T, sender MOBTXT, one message; every `timedEvery`-th row
/// with its own schedule_at, a minute apart from the next such row.
private func rows(_ n: Int, timedEvery: Int) -> String {
    var lines = ["recipient,sender,message,product,schedule_at"]
    for i in 0..<n {
        let time = timedEvery > 0 && i % timedEvery == 0 ? UTCTime.iso(testNow + 86_400 + Int64(i / timedEvery) * 60) : ""
        lines.append("\(9_000_000_000 + i),MOBTXT,Hello \(i),T,\(time)")
    }
    return lines.joined(separator: "\n") + "\n"
}

@Suite("Split: batches, their times, and the requests they really need")
struct SplitPlanTests {
    @Test("rows with their own times go in requests of their own: the plan counts exactly the requests the sender makes", arguments: [0, 2, 5])
    func requestGroups(timedEvery: Int) async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.rateLimit = 0 }
        var config = provider.config()
        config.send.requestsPerMinute = 0
        config.split.batchSize = 1000
        config.send.nodesPerRequest = 100
        let path = dir.write("timed.csv", rows(2_500, timedEvery: timedEvery))
        let out = try await sendJob(path, config: config, in: dir)
        #expect(out.summary.status == .completed)
        #expect(out.summary.plannedRequests == provider.server.acceptedRequests)
        #expect(out.summary.plan.map(\.requests).reduce(0, +) == out.summary.plannedRequests)
        if timedEvery == 0 {
            #expect(out.summary.plannedRequests == 25)
            #expect(!out.summary.warnings.contains { $0.contains("requests instead of") })
        } else {
            // Each row with its own minute is a request of its own.
            let timed = (2_500 + timedEvery - 1) / timedEvery
            #expect(out.summary.plannedRequests > timed)
        }
    }

    @Test("when per-row times multiply requests more than 4×, the plan says why and warns")
    func manyGroupsWarn() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.split.batchSize = 1000
        let out = try await runJob(dir.write("timed.csv", rows(2_000, timedEvery: 2)), config: config, in: dir)
        // 1,000 distinct minutes (one request each) plus 1,000 untimed rows (one per batch);
        // without their times the 2,000 rows would need 2 requests in each of 2 batches.
        #expect(out.summary.plannedRequests == 1_002)
        #expect(out.summary.warnings.contains { $0.contains("split 2,000 rows into 1,002 requests instead of 4") }, "\(out.summary.warnings)")
        let text = HumanSummary.plan(out.summary, config: config)
        #expect(text.contains("1,002 requests"))
        #expect(text.contains("1,002 groups of one product and one time"))
    }

    @Test("at 22:30 IST, promotional rows going at once are deferred to 09:00: the plan lists them and summary.json carries them")
    func deferredPromotional() async throws {
        let dir = TempDir()
        // 2026-11-26 17:00Z is 22:30 in Kolkata; the window opens at 09:00 = 03:30Z next day.
        let lateEvening = parseISO8601("2026-11-26T17:00:00Z")!
        let text = recipientCSV(["9876543210,123456,Sale,P", "9876543211,123456,Sale,P", "9876543212,MOBTXT,Hello,T"])
        let out = try await runJob(dir.write("promo.csv", text), in: dir, now: lateEvening)
        let opening = parseISO8601("2026-11-27T03:30:00Z")!
        #expect(out.summary.deferred == [JobSummary.DeferredEntry(scheduledAt: opening, rows: 2)])
        #expect(out.summary.plan.first?.deferred == 2)
        #expect(out.summary.warnings.contains { $0.contains("2 promotional (P) rows fall outside the promo window 09:00-21:00 Asia/Kolkata: deferred to 2026-11-27T03:30:00Z") })
        let json = out.summaryJSON
        let deferred = try #require(json["deferred"] as? [String: Any])
        #expect(deferred["rows"] as? Int == 2)
        #expect((deferred["to"] as? [[String: Any]])?.first?["scheduled_at"] as? String == "2026-11-27T03:30:00Z")
        let plan = HumanSummary.plan(out.summary, config: PipelineConfig())
        #expect(plan.contains("deferred: 2 promotional (P) rows"))
        #expect(plan.contains("2 rows to 2026-11-27T03:30:00Z"))
        // The batch file shows the deferred time per row; the T row goes at once.
        #expect(out.batchRows.column("scheduled_at") == ["2026-11-27T03:30:00Z", "2026-11-27T03:30:00Z", ""])
        // Inside the window nothing is deferred.
        let morning = try await runJob(dir.write("promo2.csv", text), in: dir)
        #expect(morning.summary.deferred.isEmpty)
    }
}
