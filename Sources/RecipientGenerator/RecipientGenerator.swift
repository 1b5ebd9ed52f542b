#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What to generate. The same options (seed included) always give the same bytes.
public struct GeneratorOptions: Sendable, Equatable {
    /// Data records, header not counted.
    public var rows: Int
    public var seed: UInt64
    /// Share of rows that are invalid (each with exactly one problem).
    public var invalidShare: Double
    /// Share of the valid rows that repeat an earlier valid row (same sender, same message
    /// bytes, the number often written in another format).
    public var duplicateShare: Double
    public var delimiter: UInt8
    public var crlf: Bool
    public var bom: Bool
    /// Spread the invalid rows over every row problem of SPEC §5 that needs no configuration
    /// (all but `outside_promo_window` and `opted_out`) instead of the three common ones
    /// (`invalid_recipient`, `invalid_sender`, `missing_message`).
    public var mixProblems: Bool
    /// Unix time the file is meant to be processed at (smsbatch `--now`). When set, about 3%
    /// of the valid T rows get a `schedule_at` between 1 hour and 30 days after it; when nil,
    /// `schedule_at` of valid rows is always empty, so the file's validity never expires.
    public var now: Int64?

    public init(
        rows: Int, seed: UInt64, invalidShare: Double = 0.02, duplicateShare: Double = 0.05,
        delimiter: UInt8 = UInt8(ascii: ","), crlf: Bool = false, bom: Bool = false,
        mixProblems: Bool = false, now: Int64? = nil
    ) {
        self.rows = rows
        self.seed = seed
        self.invalidShare = invalidShare
        self.duplicateShare = duplicateShare
        self.delimiter = delimiter
        self.crlf = crlf
        self.bom = bom
        self.mixProblems = mixProblems
        self.now = now
    }
}

/// What was generated: the row accounting smsbatch should reproduce with default settings.
public struct GeneratorStats: Sendable, Equatable {
    /// Data records written (header not counted).
    public var records = 0
    /// Bytes written, BOM and header included.
    public var bytes = 0
    /// Valid rows that repeat an earlier valid row (SPEC §6 `in_file`).
    public var duplicates = 0
    /// Invalid rows by SPEC §5 reason code.
    public var invalidByReason: [String: Int] = [:]
    public var invalid: Int { invalidByReason.values.reduce(0, +) }
    public var valid: Int { records - invalid }
}

/// An error writing to a file descriptor.
public struct GeneratorError: Error, Equatable {
    public let errno: Int32
    public init(errno: Int32) { self.errno = errno }
}

/// Streams a recipient CSV (header `recipient,sender,message,product,schedule_at,
/// template_id,entity_id,ref`) to `write` in chunks of about 1 MB, reusing one buffer.
/// - Throws: only what `write` throws.
@discardableResult
public func generateRecipients(
    _ options: GeneratorOptions, write: (_ chunk: [UInt8]) throws -> Void
) rethrows -> GeneratorStats {
    var g = Generator(options)
    return try g.run(write)
}

/// Streams a recipient CSV to an open file descriptor (see the closure variant).
/// - Throws: `GeneratorError` with the `errno` of a failed `write(2)`.
@discardableResult
public func generateRecipients(_ options: GeneratorOptions, to fd: Int32) throws -> GeneratorStats {
    try generateRecipients(options) { chunk in
        try chunk.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw GeneratorError(errno: errno)
                }
                done += n
            }
        }
    }
}

// MARK: - Generator

/// A row problem and the reason smsbatch must report for it.
private enum Problem: CaseIterable {
    case tooManyFields, tooFewFields, invalidUTF8, missingRecipient, invalidRecipient
    case invalidProduct, foreignRecipient, missingSender, invalidSender, missingMessage
    case messageTooLong, invalidSchedule, invalidDLTId

    var reason: String {
        switch self {
        case .tooManyFields, .tooFewFields: "wrong_field_count"
        case .invalidUTF8: "invalid_utf8"
        case .missingRecipient: "missing_recipient"
        case .invalidRecipient: "invalid_recipient"
        case .invalidProduct: "invalid_product"
        case .foreignRecipient: "foreign_recipient"
        case .missingSender: "missing_sender"
        case .invalidSender: "invalid_sender"
        case .missingMessage: "missing_message"
        case .messageTooLong: "message_too_long"
        case .invalidSchedule: "invalid_schedule"
        case .invalidDLTId: "invalid_dlt_id"
        }
    }

    static let common: [Problem] = [.invalidRecipient, .invalidSender, .missingMessage]
}

/// A valid row kept so a later row can repeat it.
private struct Original {
    var national: UInt64
    var format: Int
    var fields: [[UInt8]]
}

private enum Field {
    static let recipient = 0, sender = 1, message = 2, product = 3, schedule = 4
    static let template = 5, entity = 6, ref = 7, count = 8
}

private struct Generator {
    let o: GeneratorOptions
    var rng: SplitMix64
    var out: [UInt8] = []
    var fields = [[UInt8]](repeating: [], count: Field.count)
    var originals: [Original] = []
    var nextOriginal = 0
    var stats = GeneratorStats()
    var digitPool: UInt64 = 0
    var digitsLeft = 0
    let problems: [Problem]
    static let flushAt = 1 << 20
    static let keptOriginals = 2048

    init(_ o: GeneratorOptions) {
        self.o = o
        rng = SplitMix64(seed: o.seed)
        problems = o.mixProblems ? Problem.allCases : Problem.common
        out.reserveCapacity(Generator.flushAt + 8192)
    }

    mutating func run(_ write: ([UInt8]) throws -> Void) rethrows -> GeneratorStats {
        if o.bom { out += [0xEF, 0xBB, 0xBF] }
        emit(Vocabulary.header)
        for i in 0..<o.rows {
            makeRow(index: i)
            stats.records += 1
            if out.count >= Generator.flushAt {
                stats.bytes += out.count
                try write(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        if !out.isEmpty {
            stats.bytes += out.count
            try write(out)
        }
        return stats
    }

    // MARK: Rows

    mutating func makeRow(index: Int) {
        for i in fields.indices { fields[i].removeAll(keepingCapacity: true) }
        appendRef(index)
        if rng.chance(o.invalidShare) {
            let p = rng.pick(problems)
            stats.invalidByReason[p.reason, default: 0] += 1
            makeInvalid(p)
        } else if !originals.isEmpty && rng.chance(o.duplicateShare) {
            stats.duplicates += 1
            let orig = originals[rng.below(originals.count)]
            let ref = fields[Field.ref]
            fields = orig.fields
            fields[Field.ref] = ref
            fields[Field.recipient].removeAll()
            // Mostly another spelling of the same number: equal only after normalisation.
            let format = rng.chance(0.7) ? (orig.format + 1 + rng.below(7)) % 8 : orig.format
            appendNumber(orig.national, format: format)
            emit(fields)
        } else {
            let (national, format) = makeValid()
            emit(fields)
            let kept = Original(national: national, format: format, fields: fields)
            if originals.count < Generator.keptOriginals {
                originals.append(kept)
            } else {
                originals[nextOriginal] = kept
                nextOriginal = (nextOriginal + 1) % Generator.keptOriginals
            }
        }
    }

    /// Fills every field but ref with a valid row; returns the number and its format.
    mutating func makeValid() -> (UInt64, Int) {
        let national = randomNational()
        let format = randomFormat()
        appendNumber(national, format: format)
        let r = rng.below(100)
        let product: UInt8 = r < 85 ? UInt8(ascii: "T") : r < 95 ? UInt8(ascii: "P") : UInt8(ascii: "S")
        fields[Field.product].append(product)
        let senderIndex: Int
        if product == UInt8(ascii: "P") {
            senderIndex = rng.below(Vocabulary.numericSenders.count)
            fields[Field.sender] += Vocabulary.numericSenders[senderIndex]
        } else {
            senderIndex = rng.below(Vocabulary.headers.count)
            fields[Field.sender] += Vocabulary.headers[senderIndex]
        }
        appendMessage()
        if product == UInt8(ascii: "T"), let now = o.now, rng.chance(0.03) {
            appendSchedule(now + 3600 + Int64(rng.below(29 * 86400)))
        }
        if rng.chance(0.85) {
            fields[Field.template] += Array("1107".utf8)
            appendDigits(15, to: Field.template)
            // One entity (principal entity id) per sender.
            if rng.chance(0.9) {
                var s = SplitMix64(seed: UInt64(senderIndex) &+ UInt64(product) << 8)
                fields[Field.entity] += Array("1101".utf8)
                for _ in 0..<15 { fields[Field.entity].append(UInt8(ascii: "0") + UInt8(s.next() % 10)) }
            }
        }
        return (national, format)
    }

    /// A valid row with exactly one problem, the one `p` names.
    mutating func makeInvalid(_ p: Problem) {
        _ = makeValid()
        if !fields[Field.schedule].isEmpty { fields[Field.schedule].removeAll() }
        switch p {
        case .tooManyFields:
            fields.append(Array("extra".utf8))
            emit(fields)
            fields.removeLast()
            return
        case .tooFewFields:
            emit(fields[..<(Field.count - 2)])
            return
        case .invalidUTF8:
            // A Latin-1 export: é as one byte, or a stray 0xFF.
            let at = rng.below(fields[Field.message].count)
            if fields[Field.message][at] >= 0x80 {
                fields[Field.message].append(0xE9)
            } else {
                fields[Field.message].insert(rng.chance(0.5) ? 0xE9 : 0xFF, at: at)
            }
        case .missingRecipient:
            fields[Field.recipient] = rng.chance(0.5) ? [] : Array("  ".utf8)
        case .invalidRecipient:
            fields[Field.recipient].removeAll()
            switch rng.below(4) {
            case 0: fields[Field.recipient].append(UInt8(ascii: "5")); appendDigits(9, to: Field.recipient)
            case 1: fields[Field.recipient].append(UInt8(ascii: "9")); appendDigits(7, to: Field.recipient)
            case 2: fields[Field.recipient] += Array("+91 12345 67890".utf8)
            default: fields[Field.recipient] += Array("98765O4321".utf8)
            }
        case .invalidProduct:
            fields[Field.product] = rng.pick(Vocabulary.badProducts)
            fields[Field.sender] = Vocabulary.headers[0]
        case .foreignRecipient:
            fields[Field.recipient] = rng.pick(Vocabulary.foreign)
            setT()
        case .missingSender:
            fields[Field.sender] = []
        case .invalidSender:
            setT()
            fields[Field.sender] = rng.pick(Vocabulary.badHeaders)
        case .missingMessage:
            fields[Field.message] = rng.chance(0.5) ? [] : Array("   ".utf8)
        case .messageTooLong:
            // Over 10 GSM-7 parts of 153.
            fields[Field.message].removeAll()
            var scalars = 0
            while scalars < 1600 { scalars += appendPhrase(Vocabulary.english, first: scalars == 0) }
        case .invalidSchedule:
            fields[Field.schedule] = rng.pick(Vocabulary.badSchedules)
        case .invalidDLTId:
            fields[Field.template] = rng.pick(Vocabulary.badDLTIds)
        }
        emit(fields)
    }

    mutating func setT() {
        fields[Field.product] = [UInt8(ascii: "T")]
        if fields[Field.sender].first.map({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) ?? false {
            fields[Field.sender] = Vocabulary.headers[0]
        }
    }

    // MARK: Fields

    mutating func randomNational() -> UInt64 {
        6_000_000_000 + rng.next() % 4_000_000_000
    }

    /// Bare 10 digits most often, then 91…, 0…, +91 with separators, 0091….
    mutating func randomFormat() -> Int {
        let r = rng.below(16)
        switch r {
        case 0..<6: return 0
        case 6..<8: return 1
        case 8..<10: return 2
        case 10: return 3
        case 11: return 4
        case 12: return 5
        case 13, 14: return 6
        default: return 7
        }
    }

    mutating func appendNumber(_ national: UInt64, format: Int) {
        var d = [UInt8](repeating: 0, count: 10)
        var n = national
        for i in stride(from: 9, through: 0, by: -1) {
            d[i] = UInt8(ascii: "0") + UInt8(n % 10)
            n /= 10
        }
        let prefix: String, gap: String
        switch format {
        case 0: (prefix, gap) = ("", "")
        case 1: (prefix, gap) = ("91", "")
        case 2: (prefix, gap) = ("+91 ", "-")
        case 3: (prefix, gap) = ("+91", "")
        case 4: (prefix, gap) = ("0091", "")
        case 5: (prefix, gap) = ("0091 ", " ")
        case 6: (prefix, gap) = ("0", "")
        default: (prefix, gap) = ("+91 ", " ")
        }
        fields[Field.recipient] += Array(prefix.utf8)
        fields[Field.recipient] += d[..<5]
        fields[Field.recipient] += Array(gap.utf8)
        fields[Field.recipient] += d[5...]
    }

    /// ASCII (80%) or Hindi, 40–300 Unicode scalars, with commas, quotes and now and then a
    /// newline between phrases.
    mutating func appendMessage() {
        let hindi = rng.chance(0.2)
        let vocabulary = hindi ? Vocabulary.hindi : Vocabulary.english
        let target = hindi ? 70 + rng.below(171) : 60 + rng.below(241)
        var scalars = 0
        var newline = rng.chance(0.05)
        while scalars < target {
            let phrase = rng.pick(vocabulary)
            if scalars + 1 + phrase.scalars > 300 { break }
            if scalars > 0 {
                let nl = newline && rng.chance(0.3)
                if nl { newline = false }
                fields[Field.message].append(nl ? 0x0A : 0x20)
                scalars += 1
            }
            appendPhrase(phrase)
            scalars += phrase.scalars
        }
    }

    /// Appends a random phrase (after a space unless first); returns scalars added.
    @discardableResult
    mutating func appendPhrase(_ vocabulary: [Vocabulary.Phrase], first: Bool) -> Int {
        let phrase = rng.pick(vocabulary)
        if !first { fields[Field.message].append(0x20) }
        appendPhrase(phrase)
        return phrase.scalars + (first ? 0 : 1)
    }

    mutating func appendPhrase(_ phrase: Vocabulary.Phrase) {
        for b in phrase.bytes {
            fields[Field.message].append(b == UInt8(ascii: "#") ? nextDigit() : b)
        }
    }

    mutating func nextDigit() -> UInt8 {
        if digitsLeft == 0 {
            digitPool = rng.next()
            digitsLeft = 19
        }
        digitsLeft -= 1
        defer { digitPool /= 10 }
        return UInt8(ascii: "0") + UInt8(digitPool % 10)
    }

    mutating func appendDigits(_ n: Int, to field: Int) {
        for _ in 0..<n { fields[field].append(nextDigit()) }
    }

    mutating func appendRef(_ index: Int) {
        fields[Field.ref].append(UInt8(ascii: "r"))
        appendDecimal(index + 1, to: Field.ref, width: 1)
    }

    mutating func appendDecimal(_ value: Int, to field: Int, width: Int) {
        var digits: [UInt8] = []
        var v = value
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        } while v > 0
        while digits.count < width { digits.append(UInt8(ascii: "0")) }
        fields[field] += digits.reversed()
    }

    /// `YYYY-MM-DD HH:MM` in India time, or ISO 8601 in UTC with `Z`.
    mutating func appendSchedule(_ t: Int64) {
        let ist = rng.chance(0.5)
        let local = ist ? t + 19800 : t
        let days = Int(local / 86400), secs = Int(local % 86400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let f = Field.schedule
        appendDecimal(year, to: f, width: 4); fields[f].append(UInt8(ascii: "-"))
        appendDecimal(month, to: f, width: 2); fields[f].append(UInt8(ascii: "-"))
        appendDecimal(day, to: f, width: 2); fields[f].append(ist ? 0x20 : UInt8(ascii: "T"))
        appendDecimal(secs / 3600, to: f, width: 2); fields[f].append(UInt8(ascii: ":"))
        appendDecimal(secs % 3600 / 60, to: f, width: 2)
        if !ist { fields[f] += Array(":00Z".utf8) }
    }

    // MARK: Output

    /// Writes one record, quoting a field only when it holds the delimiter, a quote or a
    /// line break.
    mutating func emit<C: Collection>(_ record: C) where C.Element == [UInt8] {
        var first = true
        for f in record {
            if !first { out.append(o.delimiter) }
            first = false
            if f.contains(where: { $0 == o.delimiter || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) {
                out.append(0x22)
                for b in f {
                    if b == 0x22 { out.append(0x22) }
                    out.append(b)
                }
                out.append(0x22)
            } else {
                out += f
            }
        }
        if o.crlf { out.append(0x0D) }
        out.append(0x0A)
    }
}
