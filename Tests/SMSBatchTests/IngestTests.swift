import CCSV
import Foundation
import Synchronization
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

private let lines = [
    "+91 98765-43210,MOBTXT,Hello from smsbatch,T",
    "09876543211,MOBTXT,\"Hi, \"\"there\"\"\nsecond line\",T",
    "919876543212,MOBTXT,Third,T",
]

@Suite("Ingest: archive forms, CSV dialects, headers")
struct IngestTests {
    @Test("every compressed and archived form gives the same rows", arguments: [
        (ArchiveFormat.raw, ArchiveFilter.none, "plain.csv"),
        (.raw, .gzip, "f.csv.gz"), (.raw, .bzip2, "f.csv.bz2"), (.raw, .xz, "f.csv.xz"),
        (.raw, .zstd, "f.csv.zst"), (.zip, .none, "f.zip"), (.tar, .none, "f.tar"),
        (.tar, .gzip, "f.tar.gz"),
    ])
    func archiveForms(format: ArchiveFormat, filter: ArchiveFilter, name: String) async throws {
        let dir = TempDir()
        let path = dir.file(name)
        writeArchive(path, format: format, filter: filter, entries: [("recipients.csv", Array(recipientCSV(lines).utf8))])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .completed)
        #expect(out.summary.rows == 3)
        #expect(out.batchRows.column("row") == ["2", "3", "4"])
        #expect(out.batchRows.column("recipient") == ["+919876543210", "+919876543211", "+919876543212"])
    }

    @Test("several CSV entries are one campaign, numbered on across entries, each header taking a row")
    func multiEntry() async throws {
        let dir = TempDir()
        let path = dir.file("two.zip")
        writeArchive(path, format: .zip, entries: [
            ("a.csv", Array(recipientCSV(Array(lines[0..<2])).utf8)),
            ("notes/README.txt", Array("not a campaign".utf8)),
            ("__MACOSX/._a.csv", [0, 1, 2]),
            ("b.CSV", Array(recipientCSV([lines[2]]).utf8)),
        ])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rows == 3)
        #expect(out.batchRows.column("row") == ["2", "3", "5"])
        #expect(out.summary.warnings.count == 1)
        #expect(out.summary.warnings.first?.contains("README.txt") == true)
    }

    @Test("an Excel export: BOM, semicolons, CRLF, quoted newlines and doubled quotes")
    func excelExport() async throws {
        let dir = TempDir()
        let text = "\u{FEFF}Mobile No;Sender ID;Text\r\n9876543210;MOBTXT;\"Hello; there\"\r\n9876543211;MOBTXT;\"multi\r\nline \"\"q\"\"\"\r\n"
        let out = try await runJob(dir.write("excel.csv", text), in: dir)
        #expect(out.summary.rows == 2)
        #expect(out.summary.valid == 2)
        #expect(out.batchRows.column("row") == ["2", "3"])
    }

    @Test("tab and pipe delimiters are detected from the header", arguments: ["\t", "|"])
    func delimiters(d: String) async throws {
        let dir = TempDir()
        let text = ["recipient", "sender", "message"].joined(separator: d) + "\n"
            + ["9876543210", "MOBTXT", "Hello, world"].joined(separator: d) + "\n"
        let out = try await runJob(dir.write("d.csv", text), in: dir)
        #expect(out.summary.valid == 1)
    }

    @Test("header aliases match case-insensitively, ignoring spaces, _ and -")
    func aliases() async throws {
        let dir = TempDir()
        let text = "MSISDN,Sender_ID,SMS,Service,DLT Template ID,PE-ID,Custom\n9876543210,MOBTXT,Hi,t,12345678901,12345678901,x1\n"
        let out = try await runJob(dir.write("a.csv", text), in: dir)
        #expect(out.summary.valid == 1)
    }

    @Test("a missing required column rejects the file as missing_column")
    func missingColumn() async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("m.csv", "recipient,sender\n9876543210,MOBTXT\n"), in: dir)
        #expect(out.summary.status == .rejected)
        #expect(out.summary.rejectReason == .missingColumn)
        #expect(out.result.exitStatus == .rejected)
        #expect(out.batchFiles.isEmpty)
        // The detail says which names would have matched and where to add the file's own.
        let detail = try #require(out.summary.rejectDetail)
        #expect(detail.contains("no message column (header: recipient, sender)"))
        #expect(detail.contains("a message column is named one of: message, text, content, body, sms"))
        #expect(detail.contains("input.columns.message"))
    }

    @Test("headers CRM exports write are built-in aliases", arguments: [
        "Mobile Number,Sender ID,SMS Text", "Mobile No.,Sender ID,Message Text", "Phone Number,Sender ID,SMS Text",
    ])
    func crmHeaders(header: String) async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("crm.csv", header + "\n9876543210,MOBTXT,Hello\n"), in: dir)
        #expect(out.summary.rejectReason == nil)
        #expect(out.summary.valid == 1)
    }

    @Test("an empty .gz or .xz is no_rows, like an empty file", arguments: [ArchiveFilter.gzip, .xz])
    func emptyCompressed(filter: ArchiveFilter) async throws {
        let dir = TempDir()
        let path = dir.file("empty.csv.z")
        writeArchive(path, format: .raw, filter: filter, entries: [("data", [])])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rejectReason == .noRows)
    }

    @Test("an empty file and a header-only file are no_rows", arguments: ["", "recipient,sender,message\n"])
    func noRows(text: String) async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("e.csv", text), in: dir)
        #expect(out.summary.rejectReason == .noRows)
        #expect(out.summary.rows == 0)
    }

    @Test("a truncated .gz is unreadable, counting the rows read before the damage")
    func truncatedGzip() async throws {
        let dir = TempDir()
        let many = (0..<50_000).map { "98765\(String(format: "%05d", $0)),MOBTXT,Message number \($0) with some text,T" }
        let full = dir.file("full.csv.gz")
        writeArchive(full, format: .raw, filter: .gzip, entries: [("data", Array(recipientCSV(many).utf8))])
        let bytes = [UInt8](FileManager.default.contents(atPath: full)!)
        let cut = dir.write("cut.csv.gz", Array(bytes.prefix(bytes.count / 2)))
        let out = try await runJob(cut, in: dir)
        #expect(out.summary.rejectReason == .unreadable)
        #expect(out.summary.rows > 0 && out.summary.rows < 50_000)
        #expect(out.batchFiles.isEmpty)
    }

    @Test("a corrupt zip is unreadable")
    func corruptZip() async throws {
        let dir = TempDir()
        let full = dir.file("ok.zip")
        writeArchive(full, format: .zip, entries: [("a.csv", Array(recipientCSV(lines).utf8))])
        var bytes = [UInt8](FileManager.default.contents(atPath: full)!)
        for i in 30..<min(bytes.count, 60) { bytes[i] ^= 0x5A }
        let out = try await runJob(dir.write("bad.zip", bytes), in: dir)
        #expect(out.summary.status == .rejected)
        #expect(out.summary.rejectReason == .unreadable)
    }

    @Test("a zip holding only a README is unreadable: no CSV entry")
    func zipWithoutCSV() async throws {
        let dir = TempDir()
        let path = dir.file("r.zip")
        writeArchive(path, format: .zip, entries: [("README.txt", Array("hello".utf8))])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rejectReason == .unreadable)
    }

    @Test("a binary file is unreadable, not a pile of bad rows")
    func binary() async throws {
        let dir = TempDir()
        var bytes: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0]
        for i in 0..<4000 { bytes.append(UInt8(truncatingIfNeeded: i &* 31)) }
        let out = try await runJob(dir.write("prog.bin", bytes), in: dir)
        #expect(out.summary.rejectReason == .unreadable)
    }

    @Test("a gzip bomb stops at max_expanded_bytes")
    func bomb() async throws {
        let dir = TempDir()
        let row = "9876543210,MOBTXT," + String(repeating: "a", count: 150) + ",T\n"
        let path = dir.file("bomb.csv.gz")
        writeArchive(path, format: .raw, filter: .gzip, entries: [("data", Array(("recipient,sender,message,product\n" + String(repeating: row, count: 20_000)).utf8))])
        var config = PipelineConfig()
        config.input.maxExpandedBytes = 1_000_000
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.summary.rejectReason == .expandedTooLarge)
        #expect(out.batchFiles.isEmpty)
    }

    @Test("a file one byte over max_file_bytes is rejected before any row is read")
    func tooLarge() async throws {
        let dir = TempDir()
        let text = recipientCSV(lines)
        var config = PipelineConfig()
        config.input.maxFileBytes = Int64(text.utf8.count - 1)
        let out = try await runJob(dir.write("big.csv", text), config: config, in: dir)
        #expect(out.summary.rejectReason == .fileTooLarge)
        #expect(out.summary.rows == 0)
        config.input.maxFileBytes = Int64(text.utf8.count)
        #expect(try await runJob(dir.file("big.csv"), config: config, in: dir).summary.status == .completed)
    }

    @Test("a directory or a missing path is an input error (exit 66)")
    func notAFile() async {
        let dir = TempDir()
        for path in [dir.path, dir.file("nope.csv")] {
            await #expect(throws: RunError.self) { try await runJob(path, in: dir) }
            do { _ = try await runJob(path, in: dir) } catch { #expect((error as? RunError)?.exitStatus == .noInput) }
        }
    }

    @Test("a 10 MB single field is read whole and rejected as message_too_long")
    func hugeField() async throws {
        let dir = TempDir()
        let big = String(repeating: "x", count: 10 << 20)
        let out = try await runJob(dir.write("huge.csv", recipientCSV(["9876543210,MOBTXT,\"\(big)\",T"] + lines)), in: dir)
        #expect(out.reason(ofRow: 2) == "message_too_long")
        #expect(out.summary.valid == 3)
    }

    @Test("a 10 MB field grows libcsv's buffer a few times, not 80,000 (found under AddressSanitizer, whose realloc copies: the test above never ended)")
    func hugeFieldGrowth() {
        var parser = csv_parser()
        LibCSV.start(&parser)
        csv_set_realloc_func(&parser) { p, n in
            libcsvReallocations.add(1, ordering: .relaxed)
            return realloc(p, n)
        }
        let field = [UInt8](repeating: 0x78, count: 10 << 20) + [0x0A]
        let used = field.withUnsafeBytes { csv_parse(&parser, $0.baseAddress, $0.count, nil, nil, nil) }
        csv_free(&parser)
        #expect(used == field.count)
        #expect(libcsvReallocations.load(ordering: .relaxed) <= (10 << 20) / LibCSV.growth + 1)
    }
}

/// libcsv's reallocations in `hugeFieldGrowth` (a C callback captures nothing).
private let libcsvReallocations = Atomic<Int>(0)

@Suite("Ingest: broken quoting and blank lines")
struct QuotingTests {
    @Test("a quote never closed does not swallow the rows after it: its record is rejected, the rest are read")
    func unterminatedQuote() async throws {
        let dir = TempDir()
        let before = (0..<50).map { "98765\(String(format: "%05d", $0)),MOBTXT,Hello \($0),T" }
        let after = (0..<50).map { "98766\(String(format: "%05d", $0)),MOBTXT,Hello \($0),T" }
        for (name, broken) in [("mid.csv", before + ["9876511111,MOBTXT,\"never closed"] + after),
                               ("end.csv", before + after + ["9876511111,MOBTXT,\"never closed", "9876522222,MOBTXT,last,T"])] {
            let out = try await runJob(dir.write(name, recipientCSV(broken)), in: dir)
            #expect(out.summary.rows == 101 + (name == "end.csv" ? 1 : 0))
            #expect(out.summary.invalidByReason == [.wrongFieldCount: 1])
            #expect(out.accountedRows.sorted() == Array(2...(out.summary.rows + 1)))
        }
    }

    @Test("a quoted field over more than 1,000 lines is taken as a quote never closed")
    func longOpenQuote() async throws {
        let dir = TempDir()
        let rows = ["9876500000,MOBTXT,\"opens here,T"] + (1...1500).map { "98765\(String(format: "%05d", $0)),MOBTXT,Hello,T" }
        let out = try await runJob(dir.write("q.csv", recipientCSV(rows)), in: dir)
        #expect(out.summary.rows == 1501)
        #expect(out.reason(ofRow: 2) == "wrong_field_count")
        #expect(out.summary.valid == 1500)
    }

    @Test("blank lines make no row but take a row number, as a spreadsheet shows them")
    func blankLines() async throws {
        let dir = TempDir()
        let text = "recipient,sender,message\n9876500001,MOBTXT,a\n\n9876500002,MOBTXT,b\r\n  \t\r\n9876500003,MOBTXT,\"c\n\nd\"\n9876500004,MOBTXT,e\n\n"
        let out = try await runJob(dir.write("b.csv", text), in: dir)
        #expect(out.summary.rows == 4)
        #expect(out.batchRows.column("row") == ["2", "4", "6", "7"])
    }
}

@Suite("Ingest: archives cut short and ambiguous headers")
struct ArchiveEndTests {
    private let csv = Array(recipientCSV(["9876543210,MOBTXT,Hello,T", "9876543211,MOBTXT,Hi,T"]).utf8)

    @Test("a zip without its central directory is unreadable, though every entry reads")
    func zipWithoutDirectory() async throws {
        let dir = TempDir()
        let path = dir.file("ok.zip")
        writeArchive(path, format: .zip, entries: [("a.csv", csv)])
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let out = try await runJob(dir.write("cut.zip", Array(bytes.dropLast(22))), in: dir)
        #expect(out.summary.rejectReason == .unreadable)
    }

    @Test("a tar cut right after an entry is unreadable")
    func tarCutAtEntry() async throws {
        let dir = TempDir()
        let path = dir.file("ok.tar")
        writeArchive(path, format: .tar, entries: [("a.csv", csv), ("b.csv", csv)])
        #expect(try await runJob(path, in: dir).summary.status == .completed)
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        // pax header + header + one 512-byte data block for the first entry.
        let firstEntryEnd = bytes.count - (bytes.count - 3 * 512)
        let out = try await runJob(dir.write("cut.tar", Array(bytes.prefix(firstEntryEnd))), in: dir)
        #expect(out.summary.rejectReason == .unreadable)
    }

    @Test("a column named exactly as the role wins over an alias, and the other is named in a warning")
    func exactNameWins() async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("h.csv", "recipient,sender,text,message\n9876543210,MOBTXT,,Hello\n"), in: dir)
        #expect(out.summary.valid == 1)
        #expect(out.summary.warnings.contains { $0.contains("'text'") })
    }

    @Test("a bomb past max_expanded_bytes still counts the rows read before the limit")
    func bombCountsRows() async throws {
        let dir = TempDir()
        let rows = (0..<3000).map { "98765\(String(format: "%05d", $0)),MOBTXT,Message \($0),T" }
        let path = dir.file("b.csv.gz")
        writeArchive(path, format: .raw, filter: .gzip, entries: [("data", Array(recipientCSV(rows).utf8))])
        var config = PipelineConfig()
        config.input.maxExpandedBytes = 60_000
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.summary.rejectReason == .expandedTooLarge)
        #expect(out.summary.rows > 0)
    }
}

@Test("rejects of an archive entry with another header are placed under the first header's columns")
func rejectsAcrossHeaders() async throws {
    let dir = TempDir()
    let path = dir.file("two.zip")
    writeArchive(path, format: .zip, entries: [
        ("a.csv", Array("recipient,sender,message,ref\n9876543210,MOBTXT,Hi,a1\n9876543211,MOBTXT,Hi,a2\n9876543212,MOBTXT,Hi,a3\n".utf8)),
        ("b.csv", Array("ref,message,sender,mobile,extra\nb1,Hello,MOBTXT,5876500000,xx\nb2,Hi,MOBTXT,9876543213,yy\nb3,Hi,MOBTXT,9876543214,zz\n".utf8)),
    ])
    let out = try await runJob(path, in: dir)
    let rejects = out.rejects
    #expect(rejects.header == ["row", "reason", "detail", "recipient", "sender", "message", "ref"])
    #expect(rejects.rows.count == 1)
    #expect(Array(rejects.rows[0].dropFirst(3)) == ["5876500000", "MOBTXT", "Hello", "b1"])
}
