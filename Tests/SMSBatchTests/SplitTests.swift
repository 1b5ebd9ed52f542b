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

@Suite("Split: caps, parts, batches and their times")
struct SplitTests {
    private func rows(_ n: Int, product: String = "T", sender: String = "MOBTXT") -> [String] {
        (0..<n).map { "98\(String(format: "%08d", $0)),\(sender),Message \($0),\(product)" }
    }

    @Test("over the bulk cap, over_cap split starts a new part at the row that would go over")
    func splitParts() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.bulk = 2500
        config.split.batchSize = 1000
        let out = try await runJob(dir.write("c.csv", recipientCSV(rows(6000))), config: config, in: dir)
        #expect(out.summary.parts == 3)
        #expect(out.summary.plan.map(\.rows) == [1000, 1000, 500, 1000, 1000, 500, 1000])
        #expect(out.summary.plan.map(\.part) == [1, 1, 1, 2, 2, 2, 3])
    }

    @Test("over a cap with over_cap reject, the file is rejected as over_cap and no batch is written")
    func rejectOverCap() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.bulk = 2500
        config.caps.overCap = .reject
        config.split.batchSize = 1000
        let out = try await runJob(dir.write("c.csv", recipientCSV(rows(3000))), config: config, in: dir)
        #expect(out.summary.rejectReason == .overCap)
        #expect(out.batchFiles.isEmpty)
        #expect(out.result.exitStatus == .rejected)
    }

    @Test("--kind quick applies the quick cap")
    func quickKind() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.quick = 1000
        config.split.batchSize = 1000
        let path = dir.write("q.csv", recipientCSV(rows(1500)))
        #expect(try await runJob(path, config: config, in: dir, kind: .quick).summary.parts == 2)
        #expect(try await runJob(path, config: config, in: dir, kind: .bulk).summary.parts == 1)
    }

    @Test("the channel cap counts WAP, RCS and VBR together; the voice cap counts VOC")
    func channelAndVoiceCaps() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.channel = 1000
        config.caps.voice = 1000
        config.split.batchSize = 1000
        let lines = rows(600, product: "WAP", sender: "+919800000001") + rows(600, product: "RCS", sender: "Brand").map { $0.replacingOccurrences(of: "Message", with: "Rich") }
        let out = try await runJob(dir.write("ch.csv", recipientCSV(lines)), config: config, in: dir)
        #expect(out.summary.parts == 2)
        #expect(out.summary.plan.map(\.rows) == [1000, 200])
        let voice = try await runJob(dir.write("v.csv", recipientCSV(rows(1200, product: "VOC", sender: "+919800000001"))), config: config, in: dir)
        #expect(voice.summary.parts == 2)
    }

    @Test("batch 1 goes at once; batch k at t0 + (k-1) * interval, every time more than 5 minutes ahead")
    func batchTimes() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.split.batchSize = 1000
        config.split.interval = 600
        let out = try await runJob(dir.write("t.csv", recipientCSV(rows(3500))), config: config, in: dir)
        let times = out.summary.plan.map(\.scheduledAt)
        #expect(times.count == 4)
        #expect(times[0] == nil)
        let later = times.dropFirst().compactMap { $0 }
        #expect(later.count == 3)
        #expect(later[0] > testNow + 300)
        #expect(later[1] - later[0] == 600 && later[2] - later[1] == 600)
        #expect(out.batchRows.column("scheduled_at")[1500] == UTCTime.iso(later[0]))
    }

    @Test("split.start at a fixed time schedules batch 1 there")
    func fixedStart() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.split.batchSize = 1000
        config.split.start = .at(testNow + 3600)
        let out = try await runJob(dir.write("t.csv", recipientCSV(rows(1500))), config: config, in: dir)
        #expect(out.summary.plan.map(\.scheduledAt) == [testNow + 3600, testNow + 3600 + 300])
    }
}

@Suite("Split: the step on its own")
struct SplitStepTests {
    private func valid(_ product: UInt8, at scheduleAt: Int64 = 0) -> RowOutcome {
        .valid(ValidRow(recipient: PhoneNumber(919_876_543_210), senderStart: -1, senderEnd: -1, messageStart: 0, messageEnd: 0,
                        product: product, encoding: .gsm7, segments: 1, scheduleAt: scheduleAt))
    }

    @Test("rows go to batches of batch_size in file order; duplicates and rejects get none; the first batch goes at once")
    func batches() {
        var config = PipelineConfig()
        config.split.batchSize = 1000
        let products = RowValidator.productTable(config.validate)
        let t = products.firstIndex { $0.code == "T" }!
        var step = SplitStep(config: config, kind: .bulk, products: products, now: testNow)
        let outcomes = Array(repeating: valid(UInt8(t)), count: 2500) + [.rejected(.invalidRecipient, detail: "")]
        var firstRowOf = Array(repeating: 0, count: 2501)
        firstRowOf[5] = 2
        step.run(outcomes, firstRowOf: firstRowOf)
        #expect(step.batchOf[0] == 1 && step.batchOf[999] == 1 && step.batchOf[1000] == 1 && step.batchOf[1001] == 2)
        #expect(step.batchOf[5] == 0 && step.batchOf[2500] == 0)
        #expect(step.timeOf[0] == nil)
        #expect(step.timeOf[1001] != nil)
        step.closeBatch()
        #expect(step.plan.map(\.rows) == [1000, 1000, 499])
        #expect(step.plan.map(\.requests) == [2, 2, 1])
    }

    @Test("a promotional row outside the window moves to the next opening; each time is a request group of its own")
    func promoAndGroups() {
        var config = PipelineConfig()
        config.split.batchSize = 1000
        config.send.nodesPerRequest = 500
        let products = RowValidator.productTable(config.validate)
        let p = UInt8(products.firstIndex { $0.code == "P" }!), t = UInt8(products.firstIndex { $0.code == "T" }!)
        // 22:30 in Kolkata; the window opens at 09:00 (03:30Z) the next day.
        let evening = parseISO8601("2026-11-26T17:00:00Z")!
        let opening = parseISO8601("2026-11-27T03:30:00Z")!
        var step = SplitStep(config: config, kind: .bulk, products: products, now: evening)
        step.run([valid(p), valid(p), valid(t), valid(t, at: evening + 3600), valid(t, at: evening + 7200)], firstRowOf: [0, 0, 0, 0, 0])
        #expect(step.timeOf == [opening, opening, nil, evening + 3600, evening + 7200])
        step.closeBatch()
        #expect(step.plan.first?.deferred == 2)
        #expect(step.plan.first?.groups == 4)
        #expect(step.plan.first?.requests == 4)
        #expect(step.deferred == [JobSummary.DeferredEntry(scheduledAt: opening, rows: 2)])
    }
}
