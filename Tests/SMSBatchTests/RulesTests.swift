import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

// The per-field rules of SPEC §5, called on bytes as the validator does.

private func bytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    Array(s.utf8).withUnsafeBufferPointer(body)
}

private func bytes<R>(_ a: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    a.withUnsafeBufferPointer(body)
}

private let india = HomeCountry(iso: "IN")!
private let kolkata = TimeZone(identifier: "Asia/Kolkata")!

private func normalize(_ s: String, home: HomeCountry = india) -> String? {
    bytes(s) { RecipientNormalizer.normalize($0, home: home) }?.description
}

// MARK: - Recipients

@Test("Indian numbers in every common form normalise to +919876543210", arguments: [
    "+91 98765-43210", "0091 9876543210", "919876543210", "09876543210", "9876543210",
    "+919876543210", "(+91) 98765.43210", "+91-98765-43210", "0 98765 43210",
])
func indianForms(_ field: String) {
    #expect(normalize(field) == "+919876543210")
}

@Test("invalid recipients are rejected as invalid_recipient", arguments: [
    "5876543210",           // 5-series: not an Indian mobile
    "+915876543210",        // the same, international: invalid, not foreign
    "98765432101",          // 11 digits
    "987654321",            // 9 digits
    "0919876543210",        // trunk 0 before an international number
    "+9198765432101",       // +91 with 11 digits
    "98765abc10",           // letters
    "+0447911123456",       // country code 0
    "+00447911123456",      // + then 00
    "000447911123456",      // three leading zeros
    "+1234567890123456",    // 16 digits
    "0044791112345678901",  // 00 + 17 digits
    "98765+43210",          // + not at the start
    "++919876543210",
    "",
    " - ( ) . ",            // nothing left after stripping
    "+",
    "00",
    "+4479",                // too short for E.164
    "98765\t43210",         // only spaces are stripped inside
])
func invalidRecipients(_ field: String) {
    #expect(normalize(field) == nil)
}

@Test("a foreign number is valid and not home")
func foreignNumber() throws {
    let n = try #require(bytes("+44 7911 123456") { RecipientNormalizer.normalize($0, home: india) })
    #expect(n.description == "+447911123456")
    #expect(n.digitCount == 12)
    #expect(!RecipientNormalizer.isHome(n, home: india))
    #expect(normalize("0044 7911 123456") == "+447911123456")
    #expect(normalize("+1 (202) 555-0123") == "+12025550123")
}

@Test("an Indian number is home for IN")
func homeNumber() throws {
    let n = try #require(bytes("9876543210") { RecipientNormalizer.normalize($0, home: india) })
    #expect(RecipientNormalizer.isHome(n, home: india))
    #expect(n.value == 919_876_543_210)
    var out: [UInt8] = [0x2C]
    n.write(into: &out)
    #expect(String(decoding: out, as: UTF8.self) == ",+919876543210")
}

@Test("national numbers of other home countries take the home calling code", arguments: [
    ("GB", "07911 123456", "+447911123456"),
    ("GB", "7911 123456", "+447911123456"),
    ("GB", "447911123456", "+447911123456"),   // starts with 44 and ≥ 10 digits: international
    ("GB", "+91 98765 43210", "+919876543210"),
    ("US", "(202) 555-0123", "+12025550123"),
    ("US", "12025550123", "+12025550123"),
    ("US", "1-202-555-0123", "+12025550123"),
    ("DE", "030 1234567", "+49301234567"),
])
func otherHomeCountries(iso: String, field: String, expected: String) throws {
    let home = try #require(HomeCountry(iso: iso))
    #expect(normalize(field, home: home) == expected)
    let n = try #require(bytes(field) { RecipientNormalizer.normalize($0, home: home) })
    #expect(RecipientNormalizer.isHome(n, home: home) == !expected.hasPrefix("+91"))
}

@Test("+91 numbers must be Indian mobiles whatever the home country")
func indiaRuleAbroad() throws {
    let gb = try #require(HomeCountry(iso: "GB"))
    #expect(normalize("+91 5876543210", home: gb) == nil)
    #expect(normalize("+91 98765 4321", home: gb) == nil)
}

// MARK: - Segments

private func segments(_ s: String) -> SegmentCount {
    bytes(s) { SegmentCounter.count($0) }
}

@Test("SMS parts are counted as GSM-7 septets or UCS-2 units", arguments: [
    (String(repeating: "a", count: 160), SMSEncoding.gsm7, 160, 1),
    (String(repeating: "a", count: 161), .gsm7, 161, 2),
    (String(repeating: "a", count: 306), .gsm7, 306, 2),       // 153 * 2
    (String(repeating: "a", count: 307), .gsm7, 307, 3),
    (String(repeating: "[", count: 80), .gsm7, 160, 1),        // extension: 2 septets each
    (String(repeating: "[", count: 81), .gsm7, 162, 2),
    ("^{}\\[]~|€\u{0C}", .gsm7, 20, 1),
    ("Price: 5€", .gsm7, 10, 1),
    ("", .gsm7, 0, 1),
    ("hello `world`", .ucs2, 13, 1),                           // backtick is not GSM
    ("a\tb", .ucs2, 3, 1),                                     // nor is TAB
    (String(repeating: "अ", count: 70), .ucs2, 70, 1),
    (String(repeating: "अ", count: 71), .ucs2, 71, 2),
    (String(repeating: "अ", count: 134), .ucs2, 134, 2),       // 67 * 2
    (String(repeating: "अ", count: 135), .ucs2, 135, 3),
    ("नमस्ते", .ucs2, 6, 1),
    ("Hi 😀", .ucs2, 5, 1),                                     // emoji: 2 UTF-16 units
    (String(repeating: "😀", count: 35), .ucs2, 70, 1),
    (String(repeating: "😀", count: 36), .ucs2, 72, 2),
    ("ç", .ucs2, 1, 1),                                        // only capital Ç is GSM
])
func segmentTable(message: String, encoding: SMSEncoding, units: Int, parts: Int) {
    #expect(segments(message) == SegmentCount(encoding: encoding, units: units, segments: parts))
}

@Test("the whole GSM 03.38 basic set is one septet per character")
func gsmBasicSet() {
    let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        + "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    #expect(basic.unicodeScalars.count == 127)
    #expect(segments(basic) == SegmentCount(encoding: .gsm7, units: 127, segments: 1))
    // Every other ASCII character is an extension character (2) or not GSM at all.
    for b in UInt8(0)..<128 where !basic.utf8.contains(b) {
        let c = segments(String(decoding: [b], as: UTF8.self))
        let ext = Array("^{}\\[]~|\u{0C}".utf8).contains(b)
        #expect(c.encoding == (ext ? .gsm7 : .ucs2), "byte \(b)")
    }
    #expect(SMSEncoding.gsm7.name == "gsm7" && SMSEncoding.ucs2.name == "ucs2")
}

@Test("scalars are counted for the 4096 limit of non-SMS products", arguments: [
    ("", 0), ("abc", 3), ("नमस्ते", 6), ("😀😀", 2), ("aé€😀 long enough to take the word path", 38),
])
func scalarCount(message: String, count: Int) {
    #expect(bytes(message) { SegmentCounter.scalarCount($0) } == count)
    #expect(message.unicodeScalars.count == count)
}

// MARK: - Senders and DLT ids

@Test("sender rules accept and reject as SPEC §5 says", arguments: [
    (SenderRule.dltHeader, "MOBTXT", true), (.dltHeader, "MobTxt", false), (.dltHeader, "MOBTX", false),
    (.dltHeader, "MOBTXTS", false), (.dltHeader, "MOB1XT", false), (.dltHeader, "ÄBCDEF", false),
    (.numeric6, "123456", true), (.numeric6, "12345", false), (.numeric6, "12345a", false),
    (.numeric6, "1234567", false),
    (.alphanumeric, "A", true), (.alphanumeric, "My Shop 24", true), (.alphanumeric, "ABCDEFGHIJK", true),
    (.alphanumeric, "ABCDEFGHIJKL", false), (.alphanumeric, "Shop-24", false), (.alphanumeric, "Café", false),
    (.alphanumeric, "123", true), (.alphanumeric, "123456789012345", true), (.alphanumeric, "12", false),
    (.alphanumeric, "1234567890123456", false), (.alphanumeric, "12 34", false),
    (.e164, "+919876543210", true), (.e164, "919876543210", true), (.e164, "12345678", true),
    (.e164, "1234567", false), (.e164, "+0919876543210", false), (.e164, "1234567890123456", false),
    (.e164, "+", false), (.e164, "+91 98765", false),
    (.printable, "Shop ✓", true), (.printable, String(repeating: "é", count: 32), true),
    (.printable, String(repeating: "é", count: 33), false), (.printable, "a\tb", false),
    (.printable, "a\u{7F}", false), (.printable, "a\u{85}b", false), (.printable, "a\u{A0}b", true),
    (.printable, "", false),
])
func senderRules(rule: SenderRule, sender: String, accepted: Bool) {
    #expect(bytes(sender) { rule.accepts($0) } == accepted)
}

@Test("printable senders must be valid UTF-8")
func printableInvalidUTF8() {
    #expect(!bytes([0x41, 0xC3]) { SenderRule.printable.accepts($0) })
}

@Test("DLT ids are 11 to 19 digits", arguments: [
    ("12345678901", true), ("1234567890123456789", true), ("1234567890", false),
    ("12345678901234567890", false), ("1234567890a", false), ("", false), ("+12345678901", false),
])
func dltIds(id: String, valid: Bool) {
    #expect(bytes(id) { isValidDLTId($0) } == valid)
}

// MARK: - Bytes and UTF-8

@Test("trimming removes spaces and tabs at both ends only")
func trimming() {
    #expect(bytes(" \t a b\t ") { Array(trimSpacesAndTabs($0)) } == Array("a b".utf8))
    #expect(bytes(" \t ") { trimSpacesAndTabs($0).count } == 0)
    #expect(bytes("") { trimSpacesAndTabs($0).count } == 0)
}

@Test("a message of only white space is blank", arguments: [
    ("", true), ("  \t\r\n", true), ("\u{A0}\u{3000} \u{2009}", true), ("\u{85}\u{2028}\u{202F}", true),
    (" x ", false), ("\u{200B}", false), ("é", false),
])
func blankness(message: String, blank: Bool) {
    #expect(bytes(message) { isBlank($0) } == blank)
}

@Test("UTF-8 is checked strictly", arguments: [
    ([0x61, 0x62], true),
    (Array("नमस्ते 😀 é € long ascii run here".utf8), true),
    ([0xF4, 0x8F, 0xBF, 0xBF], true),                 // U+10FFFF
    ([0xEF, 0xBB, 0xBF, 0x61], true),                 // BOM
    ([0xC0, 0xAF], false),                             // overlong /
    ([0xE0, 0x80, 0xAF], false),                       // overlong, 3 bytes
    ([0xF0, 0x80, 0x80, 0xAF], false),                 // overlong, 4 bytes
    ([0xED, 0xA0, 0x80], false),                       // surrogate U+D800
    ([0xF4, 0x90, 0x80, 0x80], false),                 // above U+10FFFF
    ([0xF5, 0x80, 0x80, 0x80], false),
    ([0x61, 0xE0, 0xA4], false),                       // truncated
    (Array("0123456789abcdef".utf8) + [0xC3], false),  // truncated after the fast path
    ([0x80], false),                                   // lone continuation
    ([0xC3, 0x41], false),                             // missing continuation
    ([0xE2, 0x82, 0x41], false),
    ([0xFF], false),
] as [([UInt8], Bool)])
func utf8Validity(input: [UInt8], valid: Bool) {
    #expect(bytes(input) { isValidUTF8($0) } == valid)
    #expect((String(validating: input, as: UTF8.self) != nil) == valid)
}

// MARK: - Schedule

@Test("schedule_at is read as ISO 8601 or local time", arguments: [
    ("2026-03-01T10:00:00Z", 1_772_359_200),
    ("2026-03-01T10:00Z", 1_772_359_200),
    ("2026-03-01T10:00:00.250Z", 1_772_359_200),
    ("2026-03-01T15:30:00+05:30", 1_772_359_200),
    ("2026-03-01T15:30+0530", 1_772_359_200),
    ("2026-03-01T05:00:00-05", 1_772_359_200),
    ("2026-03-01 15:30", 1_772_359_200),               // Asia/Kolkata, UTC+5:30
    ("2026-03-01 15:30:00", 1_772_359_200),
    ("2026-03-01T15:30:00", 1_772_359_200),
    ("2024-02-29 05:30", 1_709_164_800),               // leap day
    ("1970-01-01T00:00:00Z", 0),
] as [(String, Int64)])
func scheduleParses(cell: String, epoch: Int64) {
    #expect(bytes(cell) { ScheduleParser.parse($0, timeZone: kolkata) } == epoch)
}

@Test("unparseable schedule_at is invalid_schedule", arguments: [
    "2026-02-30 10:00", "2025-02-29 10:00", "2026-13-01 10:00", "2026-00-10 10:00", "2026-04-31T10:00Z",
    "2026-03-01 24:00", "2026-03-01 10:60", "2026-03-01 10:00:60", "2026-03-01", "2026-3-1 10:00",
    "2026-03-01 10", "2026-03-01T10:00:00+5:30", "2026-03-01T10:00:00+05:", "2026-03-01T10:00:00Z ",
    "2026-03-01T10:00:00.Z", "2026/03/01 10:00", "tomorrow", "", "2026-03-01 10:00 IST",
])
func scheduleRejects(cell: String) {
    #expect(bytes(cell) { ScheduleParser.parse($0, timeZone: kolkata) } == nil)
}

@Test("local times follow daylight saving time", arguments: [
    ("2026-07-01 12:00", 1_782_921_600),   // EDT, UTC−4
    ("2026-01-15 12:00", 1_768_496_400),   // EST, UTC−5
    ("2026-03-08 02:30", 1_772_955_000),   // in the spring gap: read as EST, i.e. 03:30 EDT
    ("2026-11-01 01:30", 1_793_511_000),   // happens twice: the first (EDT)
] as [(String, Int64)])
func scheduleDST(cell: String, epoch: Int64) throws {
    let ny = try #require(TimeZone(identifier: "America/New_York"))
    #expect(bytes(cell) { ScheduleParser.parse($0, timeZone: ny) } == epoch)
}

// MARK: - Promo window

/// 2026-03-01 00:00 in Asia/Kolkata.
private let kolkataMidnight: Int64 = 1_772_303_400

@Test("the promo window holds from 09:00 up to but not including 21:00 local", arguments: [
    (540, true), (539, false), (1259, true), (1260, false), (0, false), (720, true),
] as [(Int64, Bool)])
func promoContains(localMinute: Int64, inside: Bool) {
    #expect(PromoWindow().contains(kolkataMidnight + localMinute * 60) == inside)
}

@Test("a time outside the promo window moves to the next opening", arguments: [
    (420, 540),     // 07:00, before: the same morning
    (720, 720),     // 12:00, inside: unchanged
    (1260, 1980),   // 21:00, at closing: next morning
    (1410, 1980),   // 23:30, across midnight
] as [(Int64, Int64)])
func promoNextOpening(localMinute: Int64, openingMinute: Int64) {
    let w = PromoWindow()
    let t = kolkataMidnight + localMinute * 60 + 17
    let expected = localMinute == openingMinute ? t : kolkataMidnight + openingMinute * 60
    #expect(w.nextOpening(after: t) == expected)
    #expect(w.contains(w.nextOpening(after: t)))
}

@Test("a promo window may run over midnight")
func promoOvernight() {
    var w = PromoWindow()
    w.startMinute = 22 * 60
    w.endMinute = 6 * 60
    #expect(w.contains(kolkataMidnight + 23 * 3600))
    #expect(w.contains(kolkataMidnight + 5 * 3600))
    #expect(!w.contains(kolkataMidnight + 12 * 3600))
    #expect(w.nextOpening(after: kolkataMidnight + 12 * 3600) == kolkataMidnight + 22 * 3600)
}

@Test("the next opening is found in a zone with daylight saving time")
func promoDST() {
    var w = PromoWindow()
    w.timezone = "America/New_York"
    // 2026-03-07 22:00 EST → 2026-03-08 09:00 EDT (13:00Z).
    #expect(w.nextOpening(after: 1_772_938_800) == 1_772_974_800)
}
