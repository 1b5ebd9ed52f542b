import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// Writes a generated recipient file and returns its path and what the generator put in it.
func generated(_ options: GeneratorOptions, in dir: TempDir, name: String = "gen.csv") throws -> (String, GeneratorStats) {
    let path = dir.file(name)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    defer { close(fd) }
    let stats = try generateRecipients(options, to: fd)
    return (path, stats)
}

@Suite("Report: every row accounted for exactly once")
struct AccountingTests {
    @Test("on generated files with every kind of problem mixed in, rows = valid + invalid, to_send = valid - duplicates, and each data row is in exactly one output",
          arguments: [
            GeneratorOptions(rows: 20_000, seed: 7, invalidShare: 0.1, mixProblems: true),
            GeneratorOptions(rows: 5_000, seed: 8, invalidShare: 0.1, delimiter: UInt8(ascii: ";"), crlf: true, bom: true, mixProblems: true),
            GeneratorOptions(rows: 5_000, seed: 9, invalidShare: 0.1, delimiter: 9, mixProblems: true),
          ])
    func accounting(options: GeneratorOptions) async throws {
        let dir = TempDir()
        let (path, expected) = try generated(options, in: dir)
        var config = PipelineConfig()
        config.split.batchSize = 1000
        let out = try await runJob(path, config: config, in: dir)
        let s = out.summary
        #expect(s.status == .completed)
        #expect(s.rows == expected.records)
        #expect(s.rows == s.valid + s.invalid)
        #expect(s.toSend == s.valid - s.duplicates)
        #expect(s.invalid == expected.invalid)
        #expect(s.duplicates == expected.duplicates)
        for (reason, n) in expected.invalidByReason {
            #expect(s.invalidByReason.first { $0.key.code == reason }?.value == n, "\(reason)")
        }
        // Spreadsheet numbering: header is row 1, data rows 2...rows+1, each exactly once.
        #expect(out.accountedRows.sorted() == Array(2...(expected.records + 1)))
        #expect(out.batchRows.rows.count == s.toSend)
        #expect(out.batchFiles.count == s.batches)
        // summary.json on disk says the same.
        let json = out.summaryJSON
        #expect(json["rows"] as? Int == s.rows)
        #expect(json["to_send"] as? Int == s.toSend)
    }

    @Test("summary.json has every key of SPEC §7")
    func summaryKeys() async throws {
        let dir = TempDir()
        let (path, _) = try generated(GeneratorOptions(rows: 100, seed: 1), in: dir)
        let json = try await runJob(path, in: dir).summaryJSON
        for key in ["job", "input", "sha256", "bytes", "status", "reject_reason", "rows", "valid", "invalid",
                    "invalid_by_reason", "duplicates", "to_send", "parts", "batches", "submitted", "failed",
                    "stage_ms", "started_at", "finished_at", "plan"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        #expect((json["stage_ms"] as? [String: Int])?.keys.sorted() == ["dedupe", "ingest", "report", "send", "split", "validate"])
        #expect((json["job"] as? String)?.hasPrefix("20261126T043000Z-") == true)
        #expect((json["job"] as? String)?.hasSuffix(String((json["sha256"] as! String).prefix(8))) == true)
        #expect(json["submitted"] as? Int == 0)
    }

    @Test("no temporary file is left behind once outputs are written")
    func noTempFiles() async throws {
        let dir = TempDir()
        let (path, _) = try generated(GeneratorOptions(rows: 3000, seed: 2), in: dir)
        var config = PipelineConfig()
        config.split.batchSize = 1000
        let out = try await runJob(path, config: config, in: dir)
        let all = FileManager.default.enumerator(atPath: out.dir)!.compactMap { $0 as? String }
        #expect(all.filter { $0.hasSuffix(".tmp") }.isEmpty)
        #expect(out.batchFiles == ["batch-0001.csv", "batch-0002.csv", "batch-0003.csv"])
    }
}

@Suite("Dedupe: same sender, normalised recipient and message bytes")
struct DedupeTests {
    @Test("a repeat written in another number format is an in_file duplicate of the first row")
    func normalisedDuplicate() async throws {
        let dir = TempDir()
        let text = recipientCSV([
            "+91 98765-43210,MOBTXT,Hello,T",
            "0091 9876543210,MOBTXT,Hello,T",
            "09876543210,MOBTXT,Hello ,T",
            "9876543210,MOBTXU,Hello,T",
            "919876543210,MOBTXT,Hello,T",
        ])
        let out = try await runJob(dir.write("d.csv", text), in: dir)
        #expect(out.duplicates.rows == [["3", "2", "in_file", "+919876543210", "MOBTXT", "Hello"], ["6", "2", "in_file", "+919876543210", "MOBTXT", "Hello"]])
        #expect(out.batchRows.column("row") == ["2", "4", "5"])
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
