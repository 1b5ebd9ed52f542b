import Foundation
internal import CCSV

/// Mutable state the libcsv callbacks write into, reached through libcsv's `void *`.
/// A struct behind a pointer rather than a class: no reference counting or exclusivity
/// checks on the per-field path.
private struct ParseState {
    /// The block being filled (owned by `CSVReader.current`).
    var block: UnsafeMutablePointer<RecordBlock>
    var nextRow = 1
    var nextIsHeader = true
}

/// Push-parses CSV bytes with libcsv into `RecordBlock`s.
///
/// Options: `CSV_STRICT` (a stray quote is an error, not a swallowed line) and
/// `CSV_STRICT_FINI` (an unterminated quote at the end is an error). Fields are not
/// trimmed here: messages are kept byte for byte, other fields are trimmed by validation.
/// A record with bad quoting is ended where the error was found and flagged `malformed`;
/// parsing resumes on the next line. Not Sendable: one parser, one thread.
final class CSVReader {
    private var parser = csv_parser()
    private let state: UnsafeMutablePointer<ParseState>
    /// The block records are parsed into; `exchange` hands it over whole.
    private(set) var current: BlockBox
    private var delimiter: UInt8 = 0x2C
    /// After a quoting error: input is skipped up to and including the next line feed.
    private var skippingToLineEnd = false

    init(block: BlockBox = BlockBox()) {
        current = block
        state = .allocate(capacity: 1)
        state.initialize(to: ParseState(block: block.pointer))
        csv_init(&parser, UInt8(CSV_STRICT | CSV_STRICT_FINI))
    }

    deinit {
        csv_free(&parser)
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Starts a new CSV stream (an archive entry): its first record is a header.
    func begin(delimiter: UInt8) {
        self.delimiter = delimiter
        reset()
        state.pointee.nextIsHeader = true
        skippingToLineEnd = false
    }

    private func reset() {
        csv_free(&parser)
        csv_init(&parser, UInt8(CSV_STRICT | CSV_STRICT_FINI))
        csv_set_delim(&parser, delimiter)
        csv_set_space_func(&parser) { _ in 0 }
    }

    /// Parses a chunk; complete records accumulate in the block.
    func feed(_ chunk: UnsafeRawBufferPointer) {
        guard var p = chunk.baseAddress, chunk.count > 0 else { return }
        var remaining = chunk.count
        while remaining > 0 {
            if skippingToLineEnd {
                guard let lf = memchr(p, 0x0A, remaining) else { return }
                let skipped = UnsafeRawPointer(lf) - p + 1
                p += skipped
                remaining -= skipped
                skippingToLineEnd = false
                continue
            }
            let used = csv_parse(&parser, p, remaining, onField, onRecord, state)
            if used == remaining && csv_error(&parser) == CSV_SUCCESS { return }
            // Bad quoting at p + used: end this record as malformed and resume on the next line.
            endMalformedRecord()
            p += used
            remaining -= used
            skippingToLineEnd = true
        }
    }

    /// Ends the stream: emits a last record without a line end, or flags an unterminated quote.
    func finish() {
        if skippingToLineEnd { return }
        if csv_fini(&parser, onField, onRecord, state) != 0 { endMalformedRecord() }
    }

    private func endMalformedRecord() {
        onRecord(-1, state)
        state.pointee.block.pointee.records[state.pointee.block.pointee.records.count - 1].malformed = true
        reset()
    }

    /// Complete records waiting to be processed.
    var recordCount: Int { current.pointer.pointee.records.count }
    var bufferedBytes: Int { current.pointer.pointee.bytes.count }

    /// Hands over the block of complete records and goes on parsing into `fresh`, which
    /// receives the fields of a record still being parsed.
    func exchange(_ fresh: BlockBox) -> BlockBox {
        let full = current
        fresh.pointer.pointee.takePending(from: &full.pointer.pointee)
        current = fresh
        state.pointee.block = fresh.pointer
        return full
    }
}

private func onField(_ data: UnsafeMutableRawPointer?, _ len: Int, _ ctx: UnsafeMutableRawPointer?) {
    let b = ctx.unsafelyUnwrapped.assumingMemoryBound(to: ParseState.self).pointee.block
    b.pointee.bytes.append(UnsafeRawBufferPointer(start: data, count: len))
    b.pointee.fieldEnds.append(b.pointee.bytes.count)
}

private func onRecord(_ terminator: Int32, _ ctx: UnsafeMutableRawPointer?) {
    let s = ctx.unsafelyUnwrapped.assumingMemoryBound(to: ParseState.self)
    let b = s.pointee.block
    let first = b.pointee.pendingFirstField
    let end = b.pointee.fieldEnds.count
    b.pointee.records.append(RecordInfo(
        row: s.pointee.nextRow, firstField: first, fieldCount: end - first,
        isHeader: s.pointee.nextIsHeader, malformed: false))
    b.pointee.pendingFirstField = end
    s.pointee.nextRow += 1
    s.pointee.nextIsHeader = false
}
