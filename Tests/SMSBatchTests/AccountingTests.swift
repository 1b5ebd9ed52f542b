import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// Writes a generated recipient file and returns its path and what the generator put in it.
func generated(_ options: GeneratorOptions, in dir: TempDir, name: String = "gen.csv") throws -> (String, GeneratorStats) {
    let path = dir.file(name)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
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
