import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

@Suite("Report: what the operator reads")
struct ReportTests {
    @Test("every reason label is printed whole in the plan, repeat_within_window included")
    func wholeLabels() {
        var s = JobSummary()
        s.duplicatesByReason = ["in_file": 2, "repeat_within_window": 3]
        s.invalidByReason = [.outsidePromoWindow: 4]
        let lines = HumanSummary.plan(s, config: PipelineConfig()).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains { $0.hasPrefix("duplicate repeat_within_window ") && $0.hasSuffix(" 3") })
        #expect(lines.contains { $0.hasPrefix("duplicate in_file ") && $0.hasSuffix(" 2") })
        #expect(lines.contains { $0.hasPrefix("outside_promo_window ") && $0.hasSuffix(" 4") })
    }

    @Test("the jobs table keeps a space between columns however long the values")
    func jobsColumns() {
        let job = JobRecord(id: "20261126T043000Z-0123abcd", input: "spool/processing/a-very-long-campaign-name.csv", sha256: "x",
                            status: .completed, clock: 0, rows: 1_234_567, toSend: 1_234_000, submitted: 1_234_000,
                            startedAt: 1_795_667_400, finishedAt: 1_795_667_500)
        let lines = JobListing.table([JobView(record: job, status: job.status, submitted: job.submitted, failed: job.failed, inDoubt: 0)]).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let cells = lines[1].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        #expect(cells.contains("1,234,567"))
        #expect(cells.contains("completed"))
        #expect(cells.contains("20261126T043000Z-0123abcd"))
        // Each header starts where its column starts.
        let header = lines[0]
        for name in ["STATUS", "STARTED", "FILE"] {
            let at = header.range(of: name)!.lowerBound.utf16Offset(in: header)
            let before = lines[1].utf16.index(lines[1].startIndex, offsetBy: at - 1)
            #expect(lines[1][before] == " ", "\(name) column runs into the one before it")
        }
    }

    @Test("counts are grouped by thousands", arguments: [(0, "0"), (999, "999"), (1000, "1,000"), (28354, "28,354"), (1_234_567, "1,234,567")])
    func grouping(n: Int, text: String) {
        #expect(grouped(n) == text)
    }
}

@Suite("Report: result files as a spreadsheet opens them")
struct ResultFileTests {
    private static let text = recipientCSV(["9876543210,MOBTXT,\"Hi, Asha \"\"VIP\"\"\",T", "9876543210,MOBTXT,\"Hi, Asha \"\"VIP\"\"\",T",
                                            "9876543211,MOBTXT,Hello,T", "9876543212,MOBTXT,Hello,T", "9876543213,MOBTXT,Hello,T", "12,MOBTXT,Hi,T"])
    private static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    private func bytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

    @Test("result CSVs start with a UTF-8 BOM; batch files and duplicates.csv carry the message, quoted as CSV", arguments: [true, false])
    func bomAndMessage(sending: Bool) async throws {
        let dir = TempDir()
        let path = dir.write("a.csv", Self.text)
        let out: JobOutput
        if sending {
            let provider = try TestProvider()
            out = try await sendJob(path, config: provider.config(), in: dir)
        } else {
            out = try await runJob(path, in: dir)
        }
        for name in ["batches/batch-0001.csv", "rejects.csv", "duplicates.csv"] {
            #expect(bytes(out.dir + "/" + name).starts(with: Self.bom), "\(name)")
        }
        let batch = out.batchRows
        #expect(batch.header.last == "message")
        #expect(batch.column("message") == ["Hi, Asha \"VIP\"", "Hello", "Hello", "Hello"])
        #expect(out.duplicates.header == ["row", "first_row", "reason", "recipient", "sender", "message"])
        #expect(out.duplicates.column("message") == ["Hi, Asha \"VIP\""])
        // rejects.csv keeps exactly row,reason,detail and the file's own columns.
        #expect(out.rejects.header == ["row", "reason", "detail", "recipient", "sender", "message", "product"])
    }

    @Test("output.bom: false and output.include_message: false give SPEC §7's exact columns (then §11's delivery columns) and no BOM")
    func plainColumns() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.output.bom = false
        config.output.includeMessage = false
        let out = try await runJob(dir.write("a.csv", Self.text), config: config, in: dir)
        let first = String(decoding: bytes(out.dir + "/batches/batch-0001.csv"), as: UTF8.self).split(separator: "\n").first
        #expect(first == "row,recipient,sender,product,status,message_id,http_status,error_code,error_message,attempts,segments,encoding,scheduled_at,dlr_status,dlr_at,dlr_code")
        #expect(String(decoding: bytes(out.dir + "/duplicates.csv"), as: UTF8.self).hasPrefix("row,first_row,reason,recipient,sender\n"))
        #expect(String(decoding: bytes(out.dir + "/rejects.csv"), as: UTF8.self).hasPrefix("row,reason,detail,"))
    }
}

@Suite("Report: CSV fields")
struct CSVFieldTests {
    @Test("a field needs quotes exactly when it holds a comma, quote, CR or LF, wherever it is", arguments: [0x2C, 0x22, 0x0A, 0x0D] as [UInt8])
    func quoting(special: UInt8) {
        for length in 0..<20 {
            let plain = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            #expect(!plain.withUnsafeBufferPointer(OutputFile.needsQuotes))
            for at in 0..<length {
                var field = plain
                field[at] = special
                #expect(field.withUnsafeBufferPointer(OutputFile.needsQuotes), "\(length) bytes, special at \(at)")
            }
        }
        // Bytes that differ from a special one by a bit or by one are plain.
        let near: [UInt8] = [0x2B, 0x2D, 0x21, 0x23, 0x0B, 0x0C, 0x0E, 0xAC, 0xA2, 0x8A, 0x8D, 0xFF, 0x00]
        #expect(!(near + near).withUnsafeBufferPointer(OutputFile.needsQuotes))
    }
}

@Suite("Report: report.html beside summary.json")
struct HTMLReportTests {
    @Test("report.html is self-contained (no script, nothing from the network) and shows summary.json's numbers, every reject reason with its meaning, and the batches")
    func reportHoldsTheSummary() async throws {
        let dir = TempDir()
        let (path, _) = try generated(GeneratorOptions(rows: 5_000, seed: 21, mixProblems: true), in: dir)
        let out = try await runJob(path, in: dir)
        let html = String(decoding: FileManager.default.contents(atPath: out.dir + "/report.html") ?? Data(), as: UTF8.self)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.lowercased().contains("<script"))
        let urls = html.components(separatedBy: "http").dropFirst().map { "http" + $0.prefix(30) }
        #expect(urls.allSatisfy { $0.hasPrefix("http://www.w3.org/2000/svg") }, "only the SVG namespace, never a fetch")
        let s = out.summary
        for n in [s.rows, s.valid, s.toSend] { #expect(html.contains(">\(grouped(n))<"), "\(n)") }
        #expect(html.contains("Rejected rows: \(grouped(s.invalid))<"))
        #expect(html.contains(s.sha256) && html.contains(s.job))
        for (reason, n) in s.invalidByReason {
            #expect(html.contains("<code>\(reason.code)</code></td><td class=\"n\">\(grouped(n))</td>"), "\(reason.code)")
            let meaning: String = HTMLReport.meanings[reason.code] ?? "?"
            #expect(html.contains(HTMLReport.esc(meaning)), "\(reason.code) explained")
        }
        #expect(html.contains("Batches: \(grouped(s.plan.count))"))
    }

    @Test("report.locale en-IN groups digits the Indian way", arguments: [
        (0, "0"), (999, "999"), (1_000, "1,000"), (99_999, "99,999"), (1_00_000, "1,00,000"), (12_34_567, "12,34,567"),
        (1_23_45_67_890, "1,23,45,67,890"), (-5_00_000, "-5,00,000"),
    ])
    func indianGrouping(n: Int, text: String) {
        #expect(NumberLocale.indian.grouped(n) == text)
    }

    @Test("with report.locale: en-IN the page's numbers are grouped the Indian way; pipeline.yaml names the locale")
    func localeInThePage() async throws {
        let dir = TempDir()
        dir.write("p.yaml", "report:\n  locale: en-IN\n")
        let config = try ConfigLoader.load(path: dir.file("p.yaml"))
        #expect(config.report.locale == .indian)
        let (path, _) = try generated(GeneratorOptions(rows: 2_000, seed: 23), in: dir)
        let out = try await runJob(path, config: config, in: dir)
        let html = String(decoding: FileManager.default.contents(atPath: out.dir + "/report.html") ?? Data(), as: UTF8.self)
        #expect(html.contains(">\(NumberLocale.indian.grouped(out.summary.rows))<"))
        // The caps: 500,000 and 200,000 the Indian way.
        #expect(html.contains(">5,00,000<") && html.contains(">2,00,000<"))
        #expect(!html.contains(">500,000<"))
        dir.write("bad.yaml", "report:\n  locale: fr\n")
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: dir.file("bad.yaml")) }
    }

    @Test("summary.json's caps say how much of each limit the job used, the largest part for the caps that split; report.html shows each share")
    func caps() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.quick = 1_500
        config.caps.kind = .quick
        config.split.batchSize = 1_000
        let (path, stats) = try generated(GeneratorOptions(rows: 4_000, seed: 24, invalidShare: 0, duplicateShare: 0), in: dir)
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.summary.toSend == stats.valid)
        let caps = Dictionary(uniqueKeysWithValues: out.summary.caps.map { ($0.name, $0) })
        #expect(caps["quick"]?.limit == 1_500)
        #expect(caps["quick"]?.used == out.summary.toSend)
        #expect(caps["quick"]?.largestPart == 1_500)
        #expect(caps["channel"]?.used == 0 && caps["voice"]?.used == 0)
        #expect(caps["file_bytes"]?.used == Int(out.summary.bytes) && caps["file_bytes"]?.limit == 209_715_200)
        #expect(caps["batch_size"]?.used == 1_000 && caps["batch_size"]?.limit == 500_000)
        let json = try #require(out.summaryJSON["caps"] as? [[String: Any]])
        #expect(json.count == 5)
        let html = String(decoding: FileManager.default.contents(atPath: out.dir + "/report.html") ?? Data(), as: UTF8.self)
        #expect(html.contains("messages in a quick campaign (caps.quick)</th><td class=\"n\">1,500</td><td class=\"n\">1,500</td>"))
        #expect(html.contains("100.0 %"))
        #expect(html.contains("\(out.summary.parts) parts: a cap applies to each part"))
    }

    @Test("report.html reads only the first rows of rejects.csv: what lies past them is never parsed")
    func firstRejectsOnly() throws {
        let dir = TempDir()
        // Past the rows shown, broken quoting that would fail a whole-file read.
        let lines = ["row,reason,detail"] + (2...9).map { "\($0),invalid_recipient,not a valid mobile number" }
        let path = dir.write("rejects.csv", lines.joined(separator: "\n") + "\n" + String(repeating: "x,\"broken\n", count: 70_000))
        var seen: [[UInt8]] = []
        try CSVRecords.read(path: path, limit: 6) { (fields: [[UInt8]]) throws(ReportError) in seen.append(fields[0]) }
        #expect(seen.map { String(decoding: $0, as: UTF8.self) } == ["row", "2", "3", "4", "5", "6"])
        #expect(throws: ReportError.self) { try CSVRecords.read(path: path) { (_: [[UInt8]]) throws(ReportError) in } }
    }

    @Test("a file rejected over a cap shows the whole file against the limit, over 100 %, not a part that was never made")
    func overCapRejected() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.caps.quick = 1_000
        config.caps.kind = .quick
        config.caps.overCap = .reject
        let (path, _) = try generated(GeneratorOptions(rows: 2_500, seed: 25, invalidShare: 0, duplicateShare: 0), in: dir)
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.summary.rejectReason == .overCap)
        let html = String(decoding: FileManager.default.contents(atPath: out.dir + "/report.html") ?? Data(), as: UTF8.self)
        #expect(html.contains("messages in a quick campaign (caps.quick)</th><td class=\"n\">\(grouped(out.summary.toSend))</td><td class=\"n\">1,000</td>"))
        #expect(html.contains("rect class=\"over\""))
        #expect(html.contains("rejected whole, nothing was sent"))
        #expect(!html.contains("a cap applies to each part"))
    }

    @Test("text from the file is escaped: a reject detail or file name cannot inject markup")
    func escaped() {
        let summary = JSONValue.object([("job", .string("j<1>")), ("input", .string("<img src=x onerror=alert(1)>.csv")), ("rows", .int(1))])
        let html = HTMLReport().render(summary, rejects: [["row", "reason", "detail"], ["2", "invalid_utf8", "<script>alert(1)</script>"]])
        #expect(!html.contains("<img") && !html.contains("<script>alert"))
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;.csv"))
    }
}

@Suite("Report: what the campaign will cost")
struct MessageCostTests {
    @Test("summary.json's messages: rows to send by encoding and by SMS parts, and the parts in all, equal the batch files' segments; report.html shows them")
    func partsAndEncodings() async throws {
        let dir = TempDir()
        let (path, _) = try generated(GeneratorOptions(rows: 3_000, seed: 22), in: dir)
        let out = try await runJob(path, in: dir)
        let messages = try #require(out.summaryJSON["messages"] as? [String: Any])
        let byEncoding = try #require(messages["by_encoding"] as? [String: Int])
        let byParts = try #require(messages["by_parts"] as? [String: Int])
        let rows = out.batchRows
        #expect(byEncoding.values.reduce(0, +) == out.summary.toSend)
        #expect(byEncoding["gsm7"] == rows.column("encoding").filter { $0 == "gsm7" }.count)
        #expect(byEncoding["ucs2"] == rows.column("encoding").filter { $0 == "ucs2" }.count)
        let segments = rows.column("segments").compactMap { Int($0) }
        #expect(messages["sms_parts"] as? Int == segments.reduce(0, +))
        for (parts, n) in byParts { #expect(segments.filter { $0 == Int(parts) }.count == n, "\(parts) parts") }
        let html = String(decoding: FileManager.default.contents(atPath: out.dir + "/report.html") ?? Data(), as: UTF8.self)
        #expect(html.contains("Messages: \(grouped(segments.reduce(0, +))) SMS parts"))
    }
}
