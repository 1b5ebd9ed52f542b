import Foundation
import Testing
@testable import SMSBatch

/// Workbooks as operators drop them: made by openpyxl, XlsxWriter and odfpy
/// (Tests/Fixtures/make-spreadsheets.py), and by hand where a case needs exact XML.
@Suite("Spreadsheets: .xlsx and .ods read as the sheet shows them, streamed")
struct SpreadsheetTests {
    private func fixture(_ name: String, in dir: TempDir, as target: String? = nil) throws -> String {
        let path = dir.file(target ?? name)
        try FileManager.default.copyItem(atPath: fixturesDir + "/" + name, toPath: path)
        return path
    }

    /// Rejected rows are what these tests look at: no file-level too_many_invalid.
    private var lenient: PipelineConfig {
        var c = PipelineConfig()
        c.validate.maxInvalidRatio = 1
        return c
    }

    private func byRow(_ t: CSVTable, _ column: String) -> [Int: String] {
        Dictionary(uniqueKeysWithValues: zip(t.column("row").compactMap(Int.init), t.column(column)))
    }

    @Test("an openpyxl workbook: first sheet, CRM headers, numbers with every digit, a date cell in schedule_at, the sheet's own row numbers")
    func openpyxlWorkbook() async throws {
        let dir = TempDir()
        let out = try await runJob(try fixture("people.xlsx", in: dir), config: lenient, in: dir)
        #expect(out.summary.status == .completed, "\(out.summary.rejectDetail ?? "")")
        // Rows 2 3 5 6 7 8 of sheet "Campaign" (row 4 is empty); "Notes" is not read.
        #expect(out.summary.rows == 6)
        let recipients = byRow(out.batchRows, "recipient")
        #expect(recipients == [2: "+919876543210", 3: "+919876543211", 5: "+919876543212", 6: "+919876543213"])
        let messages = byRow(out.batchRows, "message")
        #expect(messages[2] == "Hello José" && messages[3] == "Line one\nLine two" && messages[5] == "Offer ₹500")
        // 2026-11-27 10:30 in validate.timezone (Asia/Kolkata) is 05:00 UTC.
        #expect(byRow(out.batchRows, "scheduled_at")[2]?.hasPrefix("2026-11-27T05:00:00") == true)
        // A number shown with thousands separators, or in scientific notation, is what the sheet shows.
        #expect(out.reason(ofRow: 7) == "invalid_recipient" && out.reason(ofRow: 8) == "invalid_recipient")
        let details = byRow(out.rejects, "detail")
        #expect(details[7]?.contains("thousands separators") == true, "\(details[7] ?? "")")
        #expect(details[8]?.contains("scientific notation") == true, "\(details[8] ?? "")")
        #expect(byRow(out.rejects, "Mobile No.")[8] == "9.20E+11")
    }

    @Test("an XlsxWriter workbook: shared strings after the sheet, rich text, _x000D_, leading zeros and literal text of a number format, a formula's value")
    func xlsxWriterWorkbook() async throws {
        let dir = TempDir()
        let out = try await runJob(try fixture("shared.xlsx", in: dir), config: lenient, in: dir)
        #expect(out.summary.rows == 4)
        let recipients = byRow(out.batchRows, "recipient")
        #expect(recipients[2] == "+919876543210", "format 00000000000 shows 09876543210")
        #expect(recipients[3] == "+919876543211", "format \"+\"0 shows +919876543211")
        #expect(recipients[5] == nil)
        let messages = byRow(out.batchRows, "message")
        #expect(messages[2] == "Hello rich world")
        #expect(messages[3] == "carriage\r\nreturn")
        #expect(out.reason(ofRow: 4) == "invalid_recipient")
        #expect(byRow(out.rejects, "recipient")[4] == "TRUE")
        // A filled cell past the header's last column.
        #expect(out.reason(ofRow: 5) == "wrong_field_count")
    }

    @Test("an odfpy spreadsheet: paragraphs and spaces as shown, comments left out, repeated rows expanded, a million empty rows cost nothing")
    func openDocument() async throws {
        let dir = TempDir()
        let out = try await runJob(try fixture("people.ods", in: dir), config: lenient, in: dir)
        #expect(out.summary.status == .completed, "\(out.summary.rejectDetail ?? "")")
        #expect(out.summary.rows == 4)
        #expect(out.summary.duplicates == 1, "the repeated row is a row twice")
        let recipients = byRow(out.batchRows, "recipient")
        #expect(recipients[2] == "+919876543210" && recipients[3] == "+919876543211" && recipients[8] == "+919876543212")
        #expect(byRow(out.duplicates, "first_row")[4] == "3")
        let messages = byRow(out.batchRows, "message")
        #expect(messages[2] == "two   spaces\nsecond paragraph")
        #expect(byRow(out.batchRows, "sender")[2] == "MOBTXT")
        #expect(byRow(out.batchRows, "scheduled_at")[2]?.hasPrefix("2026-11-27T05:00:00") == true)
    }

    @Test("input.sheet picks a sheet by name; a name the workbook lacks is unreadable and lists the sheets", arguments: ["people.xlsx", "people.ods"])
    func namedSheet(file: String) async throws {
        let dir = TempDir()
        let path = try fixture(file, in: dir)
        var config = lenient
        config.input.sheet = "notes"
        let out = try await runJob(path, config: config, in: dir)
        #expect(out.summary.rows == 1)
        #expect(byRow(out.batchRows, "sender")[2] == "NOTESX")
        config.input.sheet = "Budget"
        let missing = try await runJob(path, config: config, in: dir)
        #expect(missing.summary.rejectReason == .unreadable)
        #expect(missing.summary.rejectDetail?.contains("no sheet named \"Budget\"") == true)
        #expect(missing.summary.rejectDetail?.contains("\"Campaign\", \"Notes\"") == true, "\(missing.summary.rejectDetail ?? "")")
    }

    @Test("pipeline.yaml's input.sheet is read")
    func sheetConfig() throws {
        let config = try ConfigLoader.parse(yaml: "input:\n  sheet: Notes\n", source: "pipeline.yaml")
        #expect(config.input.sheet == "Notes")
    }

    @Test("a workbook saved under a .csv name is unreadable and says what to do", arguments: [("people.xlsx", ".xlsx"), ("people.ods", ".ods")])
    func workbookNamedCSV(file: String, ext: String) async throws {
        let dir = TempDir()
        let out = try await runJob(try fixture(file, in: dir, as: "campaign.csv"), config: lenient, in: dir)
        #expect(out.summary.rejectReason == .unreadable)
        #expect(out.summary.rejectDetail?.contains("drop the \(ext) itself") == true, "\(out.summary.rejectDetail ?? "")")
    }

    /// A workbook written part by part: the XML each case needs, zipped by libarchive.
    private func workbook(_ dir: TempDir, sheet: String, styles: String = "", sharedStrings: String? = nil, workbookPr: String = "") -> String {
        let ns = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
        var parts: [(String, [UInt8])] = [
            ("xl/worksheets/sheet1.xml", Array("<?xml version=\"1.0\"?><worksheet \(ns)><sheetData>\(sheet)</sheetData></worksheet>".utf8)),
        ]
        if let sharedStrings { parts.append(("xl/sharedStrings.xml", Array("<sst \(ns)>\(sharedStrings)</sst>".utf8))) }
        parts += [
            ("xl/workbook.xml", Array("<workbook \(ns) xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\(workbookPr)<sheets><sheet name=\"S\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>".utf8)),
            ("xl/_rels/workbook.xml.rels", Array("<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".utf8)),
            ("xl/styles.xml", Array("<styleSheet \(ns)>\(styles)</styleSheet>".utf8)),
            ("[Content_Types].xml", Array("<Types/>".utf8)),
        ]
        let path = dir.file("book.xlsx")
        writeArchive(path, format: .zip, entries: parts)
        return path
    }

    private let header = "<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>recipient</t></is></c><c r=\"B1\" t=\"inlineStr\"><is><t>sender</t></is></c><c r=\"C1\" t=\"inlineStr\"><is><t>message</t></is></c><c r=\"D1\" t=\"inlineStr\"><is><t>schedule_at</t></is></c></row>"

    private func row(_ r: Int, _ a: String, message: String = "<c t=\"inlineStr\"><is><t>Hi</t></is></c>", d: String = "") -> String {
        "<row r=\"\(r)\">\(a)<c t=\"inlineStr\"><is><t>MOBTXT</t></is></c>\(message)\(d)</row>"
    }

    @Test("a number stored in scientific notation or as a float gives the digits a person sees in General format")
    func generalNumbers() async throws {
        let dir = TempDir()
        let sheet = header + row(2, "<c><v>9.19876543210E+11</v></c>") + row(3, "<c><v>9876543211.0</v></c>") + row(4, "<c t=\"n\"><v>9.87654321200000E+9</v></c>")
        let out = try await runJob(workbook(dir, sheet: sheet), config: lenient, in: dir)
        #expect(byRow(out.batchRows, "recipient") == [2: "+919876543210", 3: "+919876543211", 4: "+919876543212"])
    }

    @Test("date cells: the 1900 and the 1904 date systems, built-in and custom date formats, ISO dates (t=\"d\")", arguments: [false, true])
    func dates(date1904: Bool) async throws {
        let dir = TempDir()
        // 2026-11-27 10:30: serial 46353.4375 in the 1900 system, 44891.4375 in the 1904 one.
        let serial = date1904 ? "44891.4375" : "46353.4375"
        let styles = "<numFmts><numFmt numFmtId=\"170\" formatCode=\"dd/mm/yyyy\\ hh:mm\"/></numFmts><cellXfs><xf numFmtId=\"0\"/><xf numFmtId=\"22\"/><xf numFmtId=\"170\"/></cellXfs>"
        let sheet = header
            + row(2, "<c><v>9876543210</v></c>", d: "<c s=\"1\"><v>\(serial)</v></c>")
            + row(3, "<c><v>9876543211</v></c>", d: "<c s=\"2\"><v>\(serial)</v></c>")
            + row(4, "<c><v>9876543212</v></c>", d: "<c t=\"d\"><v>2026-11-27T10:30:00</v></c>")
        let out = try await runJob(workbook(dir, sheet: sheet, styles: styles, workbookPr: date1904 ? "<workbookPr date1904=\"1\"/>" : ""), config: lenient, in: dir)
        #expect(out.summary.invalid == 0, "\(out.rejects.rows)")
        let times = byRow(out.batchRows, "scheduled_at")
        for r in 2...4 { #expect(times[r]?.hasPrefix("2026-11-27T05:00:00") == true, "row \(r): \(times[r] ?? "none")") }
    }

    @Test("cells without references, out of order, or in skipped columns land in their columns")
    func cellPlacement() async throws {
        let dir = TempDir()
        let sheet = header
            + "<row r=\"2\"><c r=\"C2\" t=\"inlineStr\"><is><t>Third</t></is></c><c r=\"A2\"><v>9876543210</v></c><c r=\"B2\" t=\"inlineStr\"><is><t>MOBTXT</t></is></c></row>"
            + "<row><c><v>9876543211</v></c><c t=\"inlineStr\"><is><t>MOBTXT</t></is></c><c t=\"inlineStr\"><is><t>Next row</t></is></c></row>"
            + "<row r=\"9\"><c r=\"A9\"><v>9876543212</v></c><c r=\"C9\" t=\"inlineStr\"><is><t>No sender</t></is></c></row>"
        let out = try await runJob(workbook(dir, sheet: sheet), config: lenient, in: dir)
        #expect(byRow(out.batchRows, "message") == [2: "Third", 3: "Next row"])
        #expect(out.reason(ofRow: 9) == "missing_sender")
    }

    @Test("shared strings with phonetic runs and escapes; an index outside the table is an empty cell, not a crash")
    func sharedStringsTable() async throws {
        let dir = TempDir()
        let strings = "<si><t>MOBTXT</t></si><si><r><t>Kan</t></r><rPh sb=\"0\" eb=\"1\"><t>KANA</t></rPh><r><t>ji_x005F_x0041_</t></r></si>"
        let sheet = header + row(2, "<c><v>9876543210</v></c>", message: "<c t=\"s\"><v>1</v></c>") + row(3, "<c><v>9876543211</v></c>", message: "<c t=\"s\"><v>99</v></c>")
        let out = try await runJob(workbook(dir, sheet: sheet, sharedStrings: strings), config: lenient, in: dir)
        #expect(byRow(out.batchRows, "message")[2] == "Kanji_x0041_")
        #expect(out.reason(ofRow: 3) == "missing_message")
    }

    @Test("a damaged sheet: the rows before the damage are counted, the file is unreadable, and the message names the part and line")
    func damagedSheet() async throws {
        let dir = TempDir()
        let rows = (2...301).map { row($0, "<c><v>\(9_876_543_000 + $0)</v></c>") }.joined(separator: "\n")
        let sheet = header + "\n" + rows + "\n<row r=\"302\"><c><v>98765</x></c></row>"
        let out = try await runJob(workbook(dir, sheet: sheet), config: lenient, in: dir)
        #expect(out.summary.rejectReason == .unreadable)
        // Every row before the damage, none after: the parser's events before an error are
        // handed out before the error.
        #expect(out.summary.rows == 300, "\(out.summary.rows)")
        #expect(out.summary.rejectDetail?.contains("xl/worksheets/sheet1.xml") == true)
        #expect(out.summary.rejectDetail?.contains("line 302") == true, "\(out.summary.rejectDetail ?? "")")
    }

    @Test("no entity is expanded and nothing is fetched: an external entity stays out of the cell")
    func externalEntity() async throws {
        let dir = TempDir()
        let secret = dir.write("secret.txt", "TOPSECRET")
        let ns = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
        let xml = "<?xml version=\"1.0\"?><!DOCTYPE worksheet [<!ENTITY e SYSTEM \"file://\(secret)\">]><worksheet \(ns)><sheetData>"
            + header + row(2, "<c><v>9876543210</v></c>", message: "<c t=\"inlineStr\"><is><t>x&e;y</t></is></c>") + "</sheetData></worksheet>"
        let path = workbook(dir, sheet: "")
        writeArchive(path, format: .zip, entries: [
            ("xl/worksheets/sheet1.xml", Array(xml.utf8)),
            ("xl/workbook.xml", Array("<workbook \(ns) xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"S\" r:id=\"rId1\"/></sheets></workbook>".utf8)),
            ("xl/_rels/workbook.xml.rels", Array("<Relationships><Relationship Id=\"rId1\" Type=\"x/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".utf8)),
        ])
        let out = try await runJob(path, config: lenient, in: dir)
        let all = (out.batchRows.rows + out.rejects.rows).flatMap { $0 }.joined()
        #expect(!all.contains("TOPSECRET"))
    }

    @Test("cell formats: what a person sees", arguments: [
        ("0", 9876543210.0, "9876543210"), ("0.00", 1.5, "1.50"), ("#,##0", 9876543214.0, "9,876,543,214"),
        ("0%", 0.25, "25%"), ("0.00E+00", 919876543215.0, "9.20E+11"), ("00000000000", 9876543210.0, "09876543210"),
        ("\"+\"0", 919876543211.0, "+919876543211"), ("General", 0.1, "0.1"), ("@", 42.0, "42"),
        ("[$₹-4009]\\ #,##0.00", 1234.5, "₹ 1,234.50"), ("#,##0;[Red]-#,##0", 1234.0, "1,234"),
        ("yyyy-mm-dd", 46353.0, "2026-11-27 00:00:00"), ("h:mm", 0.4375, "10:30:00"),
    ])
    func formats(code: String, value: Double, shown: String) {
        #expect(CellFormat.parse(code).display(value, date1904: false) == shown)
    }
}

@Suite("Spreadsheets: rows that wait for the shared-strings table")
struct SheetRowsTests {
    /// A table read from XML bytes, as the loader thread reads one.
    private func table(_ strings: [String]) throws -> SharedStrings {
        let xml = Array(("<sst>" + strings.map { "<si><t>\($0)</t></si>" }.joined() + "</sst>").utf8)
        var given = false
        return try xml.withUnsafeBytes { bytes in
            try SharedStrings.read(XMLStream(source: { () throws(ArchiveError) -> UnsafeRawBufferPointer? in
                defer { given = true }
                return given ? nil : bytes
            }), part: "xl/sharedStrings.xml")
        }
    }

    /// Every record of the block: row, header flag and fields.
    private func records(_ rows: SheetRows) -> [String] {
        let b = rows.current.pointer
        return b.pointee.records.map { r in
            "\(r.row)\(r.isHeader ? "h" : ""):" + (0..<r.fieldCount).map { String(decoding: b.pointee.field(r, $0), as: UTF8.self) }.joined(separator: "|")
        }
    }

    private enum Cell { case text(String), shared(Int) }

    /// Feeds rows to `rows`, shared strings deferred or resolved at once.
    private func feed(_ rows: SheetRows, _ sheet: [(Int, [(Int, Cell)])], strings: SharedStrings, defer deferring: Bool) {
        for (row, cells) in sheet {
            for (column, cell) in cells {
                switch cell {
                case .text(let t): Array(t.utf8).withUnsafeBufferPointer { rows.addCell(column: column, $0) }
                case .shared(let i):
                    if deferring { rows.addDeferredCell(column: column, index: i) } else if let s = strings.string(i) { rows.addCell(column: column, s) }
                }
            }
            rows.endRow(row)
        }
    }

    @Test("rows kept until the table is read become the records they would have been, in order, with their numbers; a blank shared string leaves a blank row")
    func replayMatchesDirect() throws {
        let strings = try table(["recipient", "message", "Hello", "  ", "MOBTXT"])
        let sheet: [(Int, [(Int, Cell)])] = [
            (1, [(0, .shared(0)), (1, .text("sender")), (2, .shared(1))]),
            (2, [(0, .text("9876543210")), (1, .shared(4)), (2, .shared(2))]),
            (3, [(0, .text("9876543211")), (1, .text("MOBTXT")), (2, .text("Plain"))]),
            (5, [(1, .shared(3))]),
            (6, [(2, .shared(2)), (0, .text("9876543212")), (3, .text("extra"))]),
            (7, [(0, .shared(99))]),
        ]
        let direct = SheetRows(block: BlockBox())
        feed(direct, sheet, strings: strings, defer: false)
        let waiting = SheetRows(block: BlockBox())
        feed(waiting, sheet, strings: strings, defer: true)
        #expect(waiting.current.pointer.pointee.records.isEmpty)
        #expect(waiting.pendingRows == 6 && waiting.pendingBytes > 0)
        var ended = 0
        #expect(waiting.replayPending(strings) { ended += 1; return true })
        #expect(ended == 6)
        #expect(records(waiting) == records(direct))
        #expect(records(direct) == ["1h:recipient|sender|message", "2:9876543210|MOBTXT|Hello", "3:9876543211|MOBTXT|Plain", "6:9876543212||Hello|extra"])
        #expect(waiting.pendingRows == 0 && waiting.pendingBytes == 0)
    }

    @Test("a row after a waiting one waits too, even without shared strings, so the order holds")
    func orderHolds() throws {
        let strings = try table(["a"])
        let rows = SheetRows(block: BlockBox())
        feed(rows, [(1, [(0, .text("h"))]), (2, [(0, .shared(0))]), (3, [(0, .text("b"))])], strings: strings, defer: true)
        #expect(records(rows) == ["1h:h"])
        #expect(rows.pendingRows == 2)
        _ = rows.replayPending(strings) { true }
        #expect(records(rows) == ["1h:h", "2:a", "3:b"])
    }
}

@Suite("Spreadsheets: hostile workbooks", .tags(.process), .notInFastRuns)
struct HostileWorkbookTests {
    @Test("a sheet in UTF-16 with a lone surrogate is unreadable, and libxml2 writes nothing of its own on stderr")
    func undecodableSheet() throws {
        let dir = TempDir()
        let ns = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
        let head = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><worksheet \(ns)><sheetData><row r=\"1\"><c t=\"inlineStr\"><is><t>recip"
        let tail = "ient</t></is></c></row></sheetData></worksheet>"
        let sheet: [UInt8] = [0xFF, 0xFE] + Array(head.data(using: .utf16LittleEndian)!) + [0x00, 0xD8, 0x41, 0x00] + Array(tail.data(using: .utf16LittleEndian)!)
        writeArchive(dir.file("book.xlsx"), format: .zip, entries: [
            ("xl/workbook.xml", Array("<workbook \(ns) xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"S\" r:id=\"rId1\"/></sheets></workbook>".utf8)),
            ("xl/_rels/workbook.xml.rels", Array("<Relationships><Relationship Id=\"rId1\" Type=\"x/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".utf8)),
            ("xl/worksheets/sheet1.xml", sheet),
        ])
        let r = try smsbatch(["run", "--dry-run", "--out", "out", "book.xlsx"], cwd: dir.path)
        #expect(r.status == 65)
        #expect(jsonFile(dir.file("out/summary.json"))["reject_reason"] as? String == "unreadable")
        #expect(!r.stderr.contains("encoding error") && !r.stderr.contains("I/O error") && !r.stderr.contains("xmlParseChunk"), "\(r.stderr)")
    }
}

@Suite("Spreadsheets: repeats cost what they expand to")
struct RepeatBombTests {
    @Test("an .ods row of 16,384 filled cells repeated a million times is expanded_too_large, not 16 GB of rows")
    func repeatBomb() async throws {
        let dir = TempDir()
        let content = """
            <office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="S">\
            <table:table-row><table:table-cell><text:p>recipient</text:p></table:table-cell><table:table-cell><text:p>sender</text:p></table:table-cell><table:table-cell><text:p>message</text:p></table:table-cell></table:table-row>\
            <table:table-row table:number-rows-repeated="1000000"><table:table-cell table:number-columns-repeated="16384"><text:p>9876543210</text:p></table:table-cell></table:table-row>\
            </table:table></office:spreadsheet></office:body></office:document-content>
            """
        let path = dir.file("bomb.ods")
        writeArchive(path, format: .zip, entries: [("mimetype", Array("application/vnd.oasis.opendocument.spreadsheet".utf8)), ("content.xml", Array(content.utf8))])
        let out = try await runJob(path, in: dir)
        #expect(out.summary.rejectReason == .expandedTooLarge)
        #expect(out.summary.rows == 0)
    }
}
