import Foundation
import Testing
@testable import SMSBatch

/// Parsed records as the ingest stage hands them over: `rows[0]` is the header (row 1).
func recordBlock(_ rows: [[String]]) -> RecordBlock {
    var block = RecordBlock()
    for (n, fields) in rows.enumerated() {
        block.records.append(RecordInfo(row: n + 1, firstField: block.fieldEnds.count, fieldCount: fields.count,
                                        isHeader: n == 0, malformed: false))
        for f in fields {
            block.bytes.append(f)
            block.fieldEnds.append(block.bytes.count)
        }
    }
    return block
}

/// What validation makes of each data record of `block` (header first), with `config`.
func validated(_ block: borrowing RecordBlock, config: PipelineConfig = PipelineConfig(), now: Int64 = testNow) -> [RowOutcome] {
    let header = (0..<block.records[0].fieldCount).map { Array(block.field(block.records[0], $0)) }
    let validator = RowValidator(columns: ColumnMap(header: header, input: config.input), config: config, productOverride: nil, now: now, optOut: [])
    return block.records.dropFirst().map { validator.validate($0, in: block) }
}

@Suite("Dedupe: same sender, normalised recipient and message bytes")
struct DedupeTests {
    @Test("a repeat written in another number format is an in_file duplicate of the first row")
    func normalisedDuplicate() async throws {
        let dir = TempDir()
        let text = recipientCSV([
            "+91 98765-43210,MOBTXT,Hello,T",
            "0091 9876543210,MOBTXT,Hello,T",
            "09876543210,MOBTXT,Hello ,T",
            "9876543210,MOBTXU,Hello,T",
            "919876543210,MOBTXT,Hello,T",
        ])
        let out = try await runJob(dir.write("d.csv", text), in: dir)
        #expect(out.duplicates.rows == [["3", "2", "in_file", "+919876543210", "MOBTXT", "Hello"], ["6", "2", "in_file", "+919876543210", "MOBTXT", "Hello"]])
        #expect(out.batchRows.column("row") == ["2", "4", "5"])
    }

    @Test("the step: the first of each (sender, recipient, message) is kept; a repeat names the row it repeats; a message an earlier job sent is marked")
    func step() {
        let block = recordBlock([
            ["recipient", "sender", "message"],
            ["9876543210", "MOBTXT", "Hello"],      // row 2
            ["+91 98765 43210", "MOBTXT", "Hello"], // row 3: repeats row 2
            ["9876543210", "MOBTXT", "Hello "],     // row 4: other message bytes
            ["12", "MOBTXT", "Hello"],              // row 5: invalid, not keyed
            ["9876543211", "MOBTXT", "Sent"],       // row 6: an earlier job sent it
            ["9876543210", "MOBTXT", "Hello"],      // row 7: repeats row 2
        ])
        let outcomes = validated(block)
        var earlier = DedupeStep(defaultSender: [])
        earlier.run(block.records.dropFirst(), outcomes, block)
        var step = DedupeStep(defaultSender: [])
        step.recentlySent = [earlier.digests[4]]
        step.run(block.records.dropFirst(), outcomes, block)
        #expect(step.firstRowOf == [0, 2, 0, 0, DedupeStep.earlierJob, 2])
        #expect(step.digests[0] == step.digests[1])
        #expect(step.digests[0] != step.digests[2])
    }
}
