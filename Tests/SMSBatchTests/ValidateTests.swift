import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

private let header = "recipient,sender,message,product,schedule_at,template_id,entity_id"
private let ok = "9876543210,MOBTXT,Hello,T,,,"

/// 2026-11-26 23:00 IST, outside the default promo window.
private let nightNow: Int64 = testNow + 13 * 3600

@Suite("Validate: every reason code of SPEC §5 through the pipeline")
struct ValidateTests {
    static let cases: [(String, String)] = [
        ("9876543210,MOBTXT,Hello,T,,", "wrong_field_count"),
        ("9876543210,MOBTXT,Hello,T,,,,extra", "wrong_field_count"),
        ("9876543210,MOBTXT,Hel\u{1}lo\"x,T,,,", "wrong_field_count"),
        (",MOBTXT,Hello,T,,,", "missing_recipient"),
        ("   ,MOBTXT,Hello,T,,,", "missing_recipient"),
        ("5876543210,MOBTXT,Hello,T,,,", "invalid_recipient"),
        ("98765432,MOBTXT,Hello,T,,,", "invalid_recipient"),
        ("98765abc10,MOBTXT,Hello,T,,,", "invalid_recipient"),
        ("9876543210,MOBTXT,Hello,X,,,", "invalid_product"),
        ("+447911123456,MOBTXT,Hello,T,,,", "foreign_recipient"),
        ("+447911123456,MOBTXT,Hello,S,,,", "foreign_recipient"),
        ("9876543210,,Hello,T,,,", "missing_sender"),
        ("9876543210,MobTxt,Hello,T,,,", "invalid_sender"),
        ("9876543210,MOBTXT1,Hello,T,,,", "invalid_sender"),
        ("9876543210,MOBTXT,Hello,P,,,", "invalid_sender"),
        ("9876543210,12,Hello,G,,,", "invalid_sender"),
        ("9876543210,MOBTXT,,T,,,", "missing_message"),
        ("9876543210,MOBTXT,\"  \t \",T,,,", "missing_message"),
        ("9876543210,MOBTXT,\(String(repeating: "a", count: 1531)),T,,,", "message_too_long"),
        ("9876543210,MOBTXT,\(String(repeating: "अ", count: 671)),T,,,", "message_too_long"),
        ("+919876543210,+919876543210,\(String(repeating: "a", count: 4097)),WAP,,,", "message_too_long"),
        ("9876543210,MOBTXT,Hello,T,tomorrow,,", "invalid_schedule"),
        ("9876543210,MOBTXT,Hello,T,2026-11-26T04:34:00Z,,", "invalid_schedule"),
        ("9876543210,MOBTXT,Hello,T,2027-03-01T00:00:00Z,,", "invalid_schedule"),
        ("9876543210,MOBTXT,Hello,T,,1234567890,", "invalid_dlt_id"),
        ("9876543210,MOBTXT,Hello,T,,,12345678901234567890", "invalid_dlt_id"),
        ("9876543210,MOBTXT,Hello,T,,1234567890a1,", "invalid_dlt_id"),
    ]

    @Test("a row breaking one rule is rejected with its reason", arguments: cases)
    func reason(line: String, expected: String) async throws {
        let dir = TempDir()
        let text = recipientCSV([line] + Array(repeating: ok, count: 9), header: header)
        let out = try await runJob(dir.write("r.csv", text), in: dir)
        #expect(out.reason(ofRow: 2) == expected)
        #expect(out.summary.invalidByReason.count == 1)
    }

    @Test("invalid UTF-8 in any field is invalid_utf8, and so is a NUL byte")
    func invalidUTF8() async throws {
        let dir = TempDir()
        var bytes = Array((header + "\n").utf8)
        bytes += Array("9876543210,MOBTXT,caf".utf8) + [0xE9] + Array(",T,,,\n".utf8)
        bytes += Array("9876543210,MOBTXT,nul".utf8) + [0x00] + Array("byte,T,,,\n".utf8)
        for _ in 0..<9 { bytes += Array((ok + "\n").utf8) }
        let out = try await runJob(dir.write("u.csv", bytes), in: dir)
        #expect(out.reason(ofRow: 2) == "invalid_utf8")
        #expect(out.reason(ofRow: 3) == "invalid_utf8")
    }

    @Test("a schedule more than 5 minutes and less than max_ahead ahead is kept, in UTC")
    func schedules() async throws {
        let dir = TempDir()
        let text = recipientCSV([
            "9876543210,MOBTXT,Hello,T,2026-11-26 10:06,,",
            "9876543211,MOBTXT,Hello,T,2026-11-26T06:00:00+00:00,,",
        ], header: header)
        let out = try await runJob(dir.write("s.csv", text), in: dir)
        #expect(out.batchRows.column("scheduled_at") == ["2026-11-26T04:36:00Z", "2026-11-26T06:00:00Z"])
    }

    @Test("a promotional row scheduled outside the promo window is outside_promo_window with action reject")
    func promoReject() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.validate.promoWindow.action = .reject
        let text = recipientCSV([
            "9876543210,123456,Sale,P,2026-11-26T17:00:00Z,,",  // 22:30 IST
            "9876543211,123456,Sale,P,2026-11-26T06:00:00Z,,",  // 11:30 IST
        ] + Array(repeating: ok, count: 8), header: header)
        let out = try await runJob(dir.write("p.csv", text), config: config, in: dir)
        #expect(out.reason(ofRow: 2) == "outside_promo_window")
        #expect(out.reason(ofRow: 3) == nil)
    }

    @Test("with action defer, a promotional batch outside the window moves to the next opening")
    func promoDefer() async throws {
        let dir = TempDir()
        let text = recipientCSV(["9876543210,123456,Sale,P,,,", "9876543211,MOBTXT,Info,T,,,"], header: header)
        let out = try await runJob(dir.write("p.csv", text), in: dir, now: nightNow)
        // 23:00 IST: the P row waits for 09:00 IST (03:30 UTC) the next day; T goes at once.
        #expect(out.batchRows.column("scheduled_at") == ["2026-11-27T03:30:00Z", ""])
    }

    @Test("opted-out numbers are opted_out whatever format the list writes them in, and do not count towards max_invalid_ratio")
    func optOut() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.validate.optoutList = dir.write("optout.txt", "+91 98765 43210\n09876543211\n")
        let text = recipientCSV(["919876543210,MOBTXT,Hello,T,,,", "9876543211,MOBTXT,Hello,T,,,", ok.replacingOccurrences(of: "9876543210", with: "9876543212")], header: header)
        let out = try await runJob(dir.write("o.csv", text), config: config, in: dir)
        #expect(out.reason(ofRow: 2) == "opted_out")
        #expect(out.reason(ofRow: 3) == "opted_out")
        #expect(out.summary.status == .completed)
    }

    @Test("the opt-out list may be a CSV with a recipient column")
    func optOutCSV() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.validate.optoutList = dir.write("optout.csv", "name,Mobile\nA,9876543210\n")
        let out = try await runJob(dir.write("o.csv", recipientCSV([ok, ok.replacingOccurrences(of: "9876543210", with: "9876543219")], header: header)), config: config, in: dir)
        #expect(out.reason(ofRow: 2) == "opted_out")
        #expect(out.reason(ofRow: 3) == nil)
    }

    @Test("a row breaking several rules gets the first reason in the table's order")
    func firstReason() async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("f.csv", recipientCSV(["5876543210,,,X,never,1,2"] + Array(repeating: ok, count: 9), header: header)), in: dir)
        #expect(out.reason(ofRow: 2) == "invalid_recipient")
    }

    @Test("more than max_invalid_ratio invalid rows rejects the file as too_many_invalid")
    func tooManyInvalid() async throws {
        let dir = TempDir()
        let bad = "5876543210,MOBTXT,Hello,T,,,"
        let out = try await runJob(dir.write("t.csv", recipientCSV([bad, bad, bad, ok, ok, ok, ok, ok, ok, ok], header: header)), in: dir)
        #expect(out.summary.rejectReason == .tooManyInvalid)
        #expect(out.batchFiles.isEmpty)
        let fine = try await runJob(dir.write("t2.csv", recipientCSV([bad, bad, ok, ok, ok, ok, ok, ok, ok, ok], header: header)), in: dir)
        #expect(fine.summary.status == .completed)
    }

    @Test("product and sender come from --product and validate.default_sender when the file has no such column")
    func defaults() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.validate.defaultSender = "654321"
        let out = try await runJob(dir.write("d.csv", "mobile,text\n9876543210,Sale today\n"), config: config, in: dir, product: "p")
        #expect(out.batchRows.column("product") == ["P"])
        #expect(out.batchRows.column("sender") == ["654321"])
    }

    @Test("rejects.csv carries the original columns so a corrected file can be dropped back in")
    func rejectsColumns() async throws {
        let dir = TempDir()
        let out = try await runJob(dir.write("r.csv", recipientCSV(["5876543210,MOBTXT,\"Hi, you\",T,,,"] + Array(repeating: ok, count: 9), header: header)), in: dir)
        #expect(out.rejects.header == ["row", "reason", "detail"] + header.split(separator: ",").map(String.init))
        #expect(Array(out.rejects.rows[0].dropFirst(3)) == ["5876543210", "MOBTXT", "Hi, you", "T", "", "", ""])
    }
}
