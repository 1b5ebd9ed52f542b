import Foundation
import Testing
@testable import SMSBatch

private func normalized(_ text: String, home: String = "IN") -> String? {
    Array(text.utf8).withUnsafeBufferPointer { RecipientNormalizer.normalizePasted($0, home: HomeCountry(iso: home)!) }?.description
}

@Suite("Numbers as people paste them")
struct PastedNumberTests {
    @Test("Unicode spaces, dashes and digits from spreadsheets, web pages and phones are separators and digits", arguments: [
        "98765\u{00A0}43210", "98765\u{2009}43210", "98765\u{202F}43210", "\u{200B}9876543210", "\u{FEFF}9876543210",
        "+91\u{2011}98765\u{2013}43210", "98765\u{2212}43210", "98765\u{2014}43210",
        "९८७६५४३२१०", "+९१ ९८७६५ ४३२१०", "９８７６５４３２１０", "＋９１９８７６５４３２１０",
    ])
    func unicode(text: String) {
        #expect(normalized(text) == "+919876543210", "\(text)")
    }

    @Test("+91 (0) 98765 43210, 0091 98765 43210 and 091 98765 43210 are the same number", arguments: [
        "+91 (0) 98765 43210", "+91(0)9876543210", "0091 98765 43210", "0091 (0) 98765 43210", "091 98765 43210", "09198765 43210",
    ])
    func prefixes(text: String) {
        #expect(normalized(text) == "+919876543210", "\(text)")
    }

    @Test("Excel's text prefix and a spreadsheet's float tail are stripped; only a .0… tail", arguments: [
        ("'9876543210", "+919876543210"), ("9876543210.0", "+919876543210"), ("919876543210.00", "+919876543210"),
        ("'+91 98765 43210", "+919876543210"), ("98765.43210", "+919876543210"), ("9876543210.5", nil), ("9876543210.", "+919876543210"),
    ] as [(String, String?)])
    func spreadsheetForms(text: String, expected: String?) {
        #expect(normalized(text) == expected, "\(text)")
    }

    @Test("a float's tail never becomes a digit, whatever the home country's number lengths")
    func floatTailElsewhere() {
        #expect(normalized("447911123456.0", home: "GB") == "+447911123456")
        #expect(normalized("447911123456", home: "GB") == "+447911123456")
    }

    @Test("numbers a spreadsheet destroyed stay invalid, and the detail says what happened", arguments: [
        ("9.20E+11", "scientific notation"), ("9.19876543210E+11", "scientific notation"), ("9,2E+11", "scientific notation"),
        ("9,876,543,212", "thousands separators"), ("919,876,543,210", "thousands separators"),
    ])
    func destroyed(text: String, what: String) {
        #expect(normalized(text) == nil)
        let detail = Array(text.utf8).withUnsafeBufferPointer { PastedNumber.diagnosis($0) }
        #expect(detail?.hasPrefix(what) == true, "\(detail ?? "nil")")
        #expect(detail?.contains("format the column as text") == true)
    }

    @Test("a file of pasted numbers: each is its number, duplicates are found across forms, rejects keep the bytes as written")
    func endToEnd() async throws {
        let dir = TempDir()
        let path = dir.write("pasted.csv", recipientCSV([
            "98765\u{00A0}43210,MOBTXT,Hello,T", "९८७६५४३२११,MOBTXT,Hello,T", "'9876543212,MOBTXT,Hello,T",
            "9876543213.0,MOBTXT,Hello,T", "+91 (0) 98765 43214,MOBTXT,Hello,T", "091 98765 43210,MOBTXT,Hello,T",
            "9.87654E+09,MOBTXT,Hello,T", "9876543215,MOBTXT,Hello,T", "9876543216,MOBTXT,Hello,T", "9876543217,MOBTXT,Hello,T",
        ]))
        let out = try await runJob(path, in: dir)
        #expect(out.summary.valid == 9 && out.summary.invalid == 1)
        #expect(out.summary.duplicates == 1, "091 98765 43210 is row 2's number")
        #expect(Array(out.batchRows.column("recipient").prefix(5)) == ["+919876543210", "+919876543211", "+919876543212", "+919876543213", "+919876543214"])
        let reject = try #require(out.rejects.rows.first)
        #expect(reject[1] == "invalid_recipient")
        #expect(reject[2].hasPrefix("scientific notation (9.87654E+09)"))
        #expect(reject[3] == "9.87654E+09")
    }

    @Test("the CRM headers operators export are recipient, message and sender columns", arguments: [
        "Mobile No.,Sender ID,Message Text", "Phone No,Sender ID,SMS Text", "Mobile Number,Sender ID,Message", "Contact Number,sender,sms",
    ])
    func crmHeaders(header: String) async throws {
        let dir = TempDir()
        let path = dir.write("crm.csv", recipientCSV(["9876543210,MOBTXT,Hello"], header: header))
        let out = try await runJob(path, in: dir)
        #expect(out.summary.status == .completed && out.summary.valid == 1, "\(header): \(out.summary.rejectDetail ?? "")")
    }
}
