import Foundation
import Testing
@testable import SMSBatch

/// Files made by the real tools (openpyxl, xlwt, odfpy), committed small: Tests/Fixtures.
let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

private let campaign = recipientCSV(["9876543210,MOBTXT,Hello,T", "9876543211,MOBTXT,Hi there,T", "9876543212,MOBTXT,Offer,T"])

@Suite("Input as people have it: every archive, Excel's habits, files that are not CSV")
struct InputFormsTests {
    @Test("every archive form libarchive reads holds the campaign", arguments: [
        ArchiveFormat.sevenZip, .cpio, .iso9660, .ar, .xar, .warc,
    ])
    func archives(format: ArchiveFormat) async throws {
        let dir = TempDir()
        let path = dir.file("campaign.archive")
        writeArchive(path, format: format, entries: [("campaign.csv", Array(campaign.utf8))])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .completed, "\(format): \(out.summary.rejectDetail ?? "")")
        #expect(out.summary.rows == 3 && out.summary.valid == 3)
    }

    @Test("a RAR archive (version 4, the campaign stored) holds the campaign")
    func rar() async throws {
        // No RAR writer is free to install here: the archive is built byte by byte after
        // RARLAB's technote (marker, archive header, one stored file, end of archive).
        let dir = TempDir()
        let path = dir.write("campaign.rar", rarStored(name: "campaign.csv", data: Array(campaign.utf8)))
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .completed, "\(out.summary.rejectDetail ?? "")")
        #expect(out.summary.valid == 3)
    }

    @Test("a compressed cpio and a 7-Zip of two CSVs: every entry, every row")
    func compressedAndSeveral() async throws {
        let dir = TempDir()
        let cpio = dir.file("c.cpio.xz")
        writeArchive(cpio, format: .cpio, filter: .xz, entries: [("a.csv", Array(campaign.utf8))])
        #expect(try await runJob(cpio, in: dir).summary.valid == 3)
        let seven = dir.file("two.7z")
        let second = recipientCSV(["9876543220,MOBTXT,Again,T"])
        writeArchive(seven, format: .sevenZip, entries: [("a.csv", Array(campaign.utf8)), ("b.csv", Array(second.utf8))])
        let out = try await runJob(seven, in: dir)
        #expect(out.summary.rows == 4 && out.summary.valid == 4)
        // The job id is the SHA-256 of the file as given, though 7-Zip is read with seeking.
        #expect(out.summary.sha256 == FileDigest.sha256(path: seven))
    }

    @Test("pandas' to_csv('x.zip'): the zip's only entry has no extension and is the campaign; beside others it is skipped")
    func extensionlessEntry() async throws {
        let dir = TempDir()
        let single = dir.file("x.zip")
        writeArchive(single, format: .zip, entries: [("x", Array(campaign.utf8))])
        let out = try await runJob(single, in: dir)
        #expect(out.summary.status == .completed && out.summary.valid == 3)
        let two = dir.file("two.zip")
        writeArchive(two, format: .zip, entries: [("x", Array(campaign.utf8)), ("b.csv", Array(campaign.utf8))])
        let both = try await runJob(two, in: dir)
        #expect(both.summary.rows == 3)
        #expect(both.summary.warnings.contains { $0.contains("skipped archive entry 'x'") })
    }

    @Test("Excel's sep=; first line sets the delimiter and takes row 1; quoted too", arguments: ["sep=;", "\"sep=;\""])
    func separatorLine(first: String) async throws {
        let dir = TempDir()
        let path = dir.write("excel.csv", "\(first)\r\nrecipient;sender;message\r\n9876543210;MOBTXT;Hello, world\r\n12;MOBTXT;Bad number\r\n"
            + "9876543211;MOBTXT;Two\r\n9876543212;MOBTXT;Three\r\n9876543213;MOBTXT;Four\r\n")
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rows == 5 && out.summary.valid == 4, "\(out.summary.rejectDetail ?? "")")
        #expect(out.rejects.rows.first?.first == "4", "the bad number is on line 4")
        #expect(out.batchRows.column("row") == ["3", "5", "6", "7"])
        #expect(out.batchRows.column("message").first == "Hello, world")
    }

    @Test("records whose every field is empty (,,,,, as spreadsheets write after the data) are blank lines, not missing_recipient")
    func emptyRecords() async throws {
        let dir = TempDir()
        let path = dir.write("sheet.csv", campaign + ",,,\n,,,\r\n , ,,\n")
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rows == 3 && out.summary.invalid == 0)
        #expect(out.summary.invalidByReason[.missingRecipient] == nil)
    }

    @Test("a file that is not CSV says what it is: an HTML page, a legacy .xls, an .xlsx or .ods saved as .csv", arguments: [
        ("page.csv", "an HTML page"), ("campaign.xls", "a legacy Excel workbook (.xls)"),
        ("campaign.xlsx", "an Excel workbook (.xlsx)"), ("campaign.ods", "an OpenDocument file (.ods)"),
    ])
    func notCSV(name: String, what: String) async throws {
        let dir = TempDir()
        let path: String
        if name == "page.csv" {
            path = dir.write(name, "\n  <!DOCTYPE html>\n<html><body><table><tr><td>9876543210</td></tr></table></body></html>\n")
        } else {
            // Saved under .csv, as a hurried export is.
            path = dir.file(name + ".csv")
            try FileManager.default.copyItem(atPath: fixturesDir + "/" + name, toPath: path)
        }
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .rejected)
        #expect(out.summary.rejectReason == .unreadable)
        #expect(out.summary.rejectDetail?.contains(what) == true, "\(out.summary.rejectDetail ?? "")")
    }
}

@Suite("Input encodings: UTF-16 by its BOM, Windows-1252 and ISO-8859-1 when set, a hint when bytes are not UTF-8")
struct InputEncodingTests {
    /// Excel's "Unicode Text": UTF-16 with a BOM, tab-separated.
    private func unicodeText(_ lines: [String], bigEndian: Bool = false) -> [UInt8] {
        let text = lines.joined(separator: "\r\n") + "\r\n"
        let bom: [UInt8] = bigEndian ? [0xFE, 0xFF] : [0xFF, 0xFE]
        return bom + Array(text.data(using: bigEndian ? .utf16BigEndian : .utf16LittleEndian)!)
    }

    @Test("UTF-16 with a BOM (LE or BE) is read as the text it is, across block boundaries and surrogate pairs", arguments: [false, true])
    func utf16(bigEndian: Bool) async throws {
        let dir = TempDir()
        var lines = ["recipient\tsender\tmessage\tproduct"]
        for i in 0..<3_000 { lines.append("98765\(String(format: "%05d", i))\tMOBTXT\tNamaste José 😀 नमस्ते \(i)\tT") }
        let path = dir.write("unicode.txt", unicodeText(lines, bigEndian: bigEndian))
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .completed, "\(out.summary.rejectDetail ?? "")")
        #expect(out.summary.valid == 3_000)
        let messages = out.batchRows.column("message")
        #expect(messages.count == 3_000)
        #expect(messages.enumerated().allSatisfy { $0.element == "Namaste José 😀 नमस्ते \($0.offset)" })
    }

    @Test("a lone UTF-16 surrogate is not silently changed: its row is invalid_utf8, the others are read")
    func loneSurrogate() async throws {
        let dir = TempDir()
        var bytes = unicodeText(["recipient\tsender\tmessage\tproduct"] + (0..<9).map { "987654321\($0)\tMOBTXT\tHello\tT" })
        // A high surrogate (D800) alone before the CR LF of the last row, little-endian.
        bytes.insert(contentsOf: [0x00, 0xD8], at: bytes.count - 4)
        let path = dir.write("bad.txt", bytes)
        let out = try await runJob(path, in: dir)
        #expect(out.summary.valid == 8 && out.summary.invalidByReason[.invalidUTF8] == 1)
    }

    @Test("Windows-1252 bytes: invalid_utf8 with a hint by default, the file-level detail too; read as text with input.encoding set")
    func windows1252() async throws {
        let dir = TempDir()
        let latin = "recipient,sender,message,product\n" + (0..<10).map { "987654321\($0),MOBTXT,\"Olá José, €5 “off”\",T" }.joined(separator: "\n") + "\n"
        let bytes = Array(latin.data(using: .windowsCP1252)!)
        let path = dir.write("excel-ansi.csv", bytes)
        let auto = try await runJob(path, in: dir)
        #expect(auto.summary.rejectReason == .tooManyInvalid)
        #expect(auto.summary.rejectDetail?.contains("set input.encoding: windows-1252, iso-8859-1 or utf-16") == true, "\(auto.summary.rejectDetail ?? "")")
        #expect(auto.rejects.rows.first?[2].contains("look like Windows-1252") == true)
        // rejects.csv keeps the row's own bytes, so it can be fixed and dropped again.
        let rejects = try Data(contentsOf: URL(fileURLWithPath: auto.dir + "/rejects.csv"))
        #expect(rejects.range(of: Data("Ol\u{E1}".data(using: .windowsCP1252)!)) != nil)

        var config = PipelineConfig()
        config.input.encoding = .windows1252
        let read = try await runJob(path, config: config, in: dir)
        #expect(read.summary.valid == 10)
        #expect(read.batchRows.column("message").first == "Olá José, €5 “off”")
    }

    @Test("ISO-8859-1 when set; input.encoding names only known encodings")
    func latin1() async throws {
        let dir = TempDir()
        let text = "recipient,sender,message,product\n9876543210,MOBTXT,Grüße aus München,T\n"
        let path = dir.write("latin1.csv", Array(text.data(using: .isoLatin1)!))
        var config = PipelineConfig()
        config.input.encoding = .latin1
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.batchRows.column("message") == ["Grüße aus München"])
        dir.write("p.yaml", "input:\n  encoding: shift-jis\n")
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: dir.file("p.yaml")) }
        dir.write("q.yaml", "input:\n  encoding: Windows-1252\n")
        #expect(try ConfigLoader.load(path: dir.file("q.yaml")).input.encoding == .windows1252)
    }
}

/// A RAR 4 archive of one stored (uncompressed) file.
func rarStored(name: String, data: [UInt8]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
    /// A block: its CRC (the low 16 bits of the CRC-32 of everything after the CRC field).
    func block(_ body: [UInt8]) -> [UInt8] { le16(Int(crc32(body) & 0xFFFF)) + body }
    let marker: [UInt8] = [0x52, 0x61, 0x72, 0x21, 0x1A, 0x07, 0x00]
    let main = block([0x73] + le16(0) + le16(13) + le16(0) + le32(0))
    let nameBytes = Array(name.utf8)
    var file: [UInt8] = [0x74] + le16(0x8000) + le16(32 + nameBytes.count)
    file += le32(UInt32(data.count)) + le32(UInt32(data.count))  // packed, unpacked
    file += [3] + le32(crc32(data)) + le32(0x5A21_0000)  // host OS Unix, data CRC, DOS time
    file += [20, 0x30] + le16(nameBytes.count) + le32(0o100644) + nameBytes  // version 2.0, store
    let end = block([0x7B] + le16(0x4000) + le16(7))
    return marker + main + block(file) + data + end
}

/// CRC-32 (IEEE), as zip and RAR use it.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
