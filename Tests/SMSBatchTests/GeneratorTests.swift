import RecipientGenerator
import Testing

@Suite("recipient generator")
struct GeneratorTests {
    func generate(_ o: GeneratorOptions) -> ([UInt8], GeneratorStats) {
        var bytes: [UInt8] = []
        let stats = generateRecipients(o) { bytes += $0 }
        return (bytes, stats)
    }

    /// Field count of every record, header included; a quoted newline stays inside its record.
    func fieldCounts(_ b: [UInt8], delimiter: UInt8) -> [Int] {
        var counts: [Int] = [], fields = 1, quoted = false
        for c in b {
            if c == 0x22 { quoted.toggle() }
            else if quoted { continue }
            else if c == delimiter { fields += 1 }
            else if c == 0x0A { counts.append(fields); fields = 1 }
        }
        return counts
    }

    @Test("the same seed gives the same bytes, another seed other bytes")
    func deterministic() {
        let a = generate(GeneratorOptions(rows: 3000, seed: 7, mixProblems: true))
        let b = generate(GeneratorOptions(rows: 3000, seed: 7, mixProblems: true))
        let c = generate(GeneratorOptions(rows: 3000, seed: 8, mixProblems: true))
        #expect(a.0 == b.0)
        #expect(a.1 == b.1)
        #expect(a.0 != c.0)
    }

    @Test(
        "the file holds the rows asked, each problem row counted once",
        arguments: [
            GeneratorOptions(rows: 0, seed: 1),
            GeneratorOptions(rows: 5000, seed: 2),
            GeneratorOptions(rows: 5000, seed: 3, invalidShare: 0.3, delimiter: UInt8(ascii: ";"), crlf: true, bom: true, mixProblems: true),
        ])
    func rowCount(_ o: GeneratorOptions) {
        let (bytes, stats) = generate(o)
        let counts = fieldCounts(bytes, delimiter: o.delimiter)
        #expect(counts.count - 1 == o.rows)
        #expect(stats.records == o.rows)
        #expect(stats.bytes == bytes.count)
        #expect(bytes.starts(with: [0xEF, 0xBB, 0xBF]) == o.bom)
        #expect(counts.dropFirst().filter { $0 != 8 }.count == stats.invalidByReason["wrong_field_count", default: 0])
        if o.mixProblems {
            #expect(stats.invalidByReason.count == 12)
        }
        if o.rows > 0 {
            #expect(stats.duplicates > 0)
        }
    }
}
