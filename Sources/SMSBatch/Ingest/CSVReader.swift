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

/// libcsv as smsbatch parses CSV: strict quoting (`CSV_STRICT`, `CSV_STRICT_FINI`), no
/// trimming of spaces around fields (a message is kept byte for byte), and a field buffer
/// that grows 1 MiB at a time. libcsv grows it by `blk_size`, 128 bytes unless set: a 10 MB
/// field took 81,920 reallocations, and where realloc copies (AddressSanitizer's does; it
/// showed as a test that never ended) that is hundreds of gigabytes copied.
enum LibCSV {
    static let growth = 1 << 20

    static func start(_ parser: inout csv_parser) {
        csv_init(&parser, UInt8(CSV_STRICT | CSV_STRICT_FINI))
        csv_set_space_func(&parser) { _ in 0 }
        csv_set_blk_size(&parser, growth)
    }
}

/// Push-parses CSV bytes with libcsv into `RecordBlock`s.
///
/// Options: `CSV_STRICT` (a stray quote is an error, not a swallowed line) and
/// `CSV_STRICT_FINI` (an unterminated quote at the end is an error). Fields are not
/// trimmed here: messages are kept byte for byte, other fields are trimmed by validation.
/// A record with bad quoting is ended where the error was found and flagged `malformed`;
/// parsing resumes on the next line. A quote that never closes (found at the end of the
/// input, or after `maxQuotedLines` lines) would swallow every row after it: its lines are
/// kept while the quote is open and parsed again, from the record's second line, once the
/// record is known to be broken.
///
/// Input is fed to libcsv a line at a time, so blank lines can be told apart: they make no
/// record but take a row number, as in a spreadsheet. Not Sendable: one parser, one thread.
final class CSVReader {
    private var parser = csv_parser()
    private let state: UnsafeMutablePointer<ParseState>
    /// The block records are parsed into; `exchange` hands it over whole.
    private(set) var current: BlockBox
    private var delimiter: UInt8 = 0x2C
    /// After a quoting error: input is skipped up to and including the next line feed.
    private var skippingToLineEnd = false
    /// The start of the current line when it began in an earlier chunk, while it is at most
    /// `maxKeptLine` long (a line longer than that is no row that needs replaying; a file
    /// with bare-CR line ends is one long "line").
    private var partialLine = ByteBuffer(capacity: 1 << 12)
    private var partialLineDropped = false
    private static let maxKeptLine = 1 << 20
    /// The lines of a record whose quoted field runs over line ends, while it does.
    private var openQuote = ByteBuffer(capacity: 1 << 12)
    private var inOpenQuote = false
    private var openQuoteLines = 0
    /// A quoted field running over more lines than this is taken as a quote never closed
    /// (an SMS of 10 parts is 1,530 characters; real multi-line messages are far shorter).
    static let maxQuotedLines = 1000

    init(block: BlockBox = BlockBox()) {
        current = block
        state = .allocate(capacity: 1)
        state.initialize(to: ParseState(block: block.pointer))
        LibCSV.start(&parser)
    }

    deinit {
        csv_free(&parser)
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Starts a new CSV stream (an archive entry): its first record is a header.
    /// `skippedRows`: lines before it that were consumed elsewhere (Excel's `sep=` line).
    func begin(delimiter: UInt8, skippedRows: Int = 0) {
        self.delimiter = delimiter
        reset()
        state.pointee.nextRow += skippedRows
        state.pointee.nextIsHeader = true
        skippingToLineEnd = false
        partialLine.removeAll()
        openQuote.removeAll()
        inOpenQuote = false
    }

    private func reset() {
        csv_free(&parser)
        LibCSV.start(&parser)
        csv_set_delim(&parser, delimiter)
    }

    /// libcsv's parser states (libcsv.c): between records, and inside a field.
    private static let rowNotBegun: Int32 = 0, fieldBegun: Int32 = 2

    /// Parses a chunk; complete records accumulate in the block.
    func feed(_ chunk: UnsafeRawBufferPointer) {
        guard var p = chunk.baseAddress, chunk.count > 0 else { return }
        var remaining = chunk.count
        while remaining > 0 {
            let lf = memchr(p, 0x0A, remaining)
            let length = lf.map { UnsafeRawPointer($0) - p + 1 } ?? remaining
            let line = UnsafeRawBufferPointer(start: p, count: length)
            p += length
            remaining -= length
            if skippingToLineEnd {
                if lf != nil { skippingToLineEnd = false }
                continue
            }
            if lf != nil && partialLine.count == 0 && !partialLineDropped && !inOpenQuote
                && parser.pstate == CSVReader.rowNotBegun && isBlankLine(line) {
                state.pointee.nextRow += 1  // a spreadsheet shows the empty row
                continue
            }
            if inOpenQuote { openQuote.append(line) }
            let used = csv_parse(&parser, line.baseAddress, line.count, onField, onRecord, state)
            if used != line.count || csv_error(&parser) != CSV_SUCCESS {
                // Bad quoting: end this record as malformed and resume on the next line.
                endMalformedRecord()
                inOpenQuote = false
                openQuote.removeAll()
                partialLine.removeAll()
                skippingToLineEnd = lf == nil
                continue
            }
            guard lf != nil else {
                if partialLine.count + line.count <= CSVReader.maxKeptLine && !partialLineDropped {
                    partialLine.append(line)
                } else {
                    partialLine.removeAll()
                    partialLineDropped = true
                }
                continue
            }
            defer { partialLineDropped = false }
            if parser.pstate == CSVReader.fieldBegun && parser.quoted != 0 {
                // The line feed was inside a quoted field: the record goes on. (Its first
                // line must be whole to be replayed; a dropped one leaves it untracked.)
                if !inOpenQuote && !partialLineDropped {
                    inOpenQuote = true
                    openQuoteLines = 0
                    openQuote.removeAll()
                    openQuote.append(partialLine.bytes)
                    openQuote.append(line)
                }
                if inOpenQuote {
                    openQuoteLines += 1
                    if openQuoteLines > CSVReader.maxQuotedLines { reparseOpenQuote() }
                }
            } else if inOpenQuote {
                inOpenQuote = false
                openQuote.removeAll()
            }
            partialLine.removeAll()
        }
    }

    /// Ends the stream: emits a last record without a line end, or flags an unterminated
    /// quote, parsing the lines it swallowed again.
    func finish() {
        if skippingToLineEnd { return }
        if csv_fini(&parser, onField, onRecord, state) != 0 {
            if inOpenQuote {
                reparseOpenQuote()
                finish()
            } else {
                endMalformedRecord()
            }
        }
    }

    /// The open quote will never close: the record it is in ends as malformed at its first
    /// line, and the lines after that line are parsed again as rows of their own.
    private func reparseOpenQuote() {
        endMalformedRecord()
        inOpenQuote = false
        partialLine.removeAll()
        let lines = Array(openQuote.bytes)
        openQuote.removeAll()
        guard let firstLF = lines.firstIndex(of: 0x0A) else { return }
        lines[(firstLF + 1)...].withUnsafeBytes { feed($0) }
    }

    /// Blank: nothing but spaces, tabs and delimiters (`,,,,,`: the empty rows spreadsheets
    /// write after the data).
    private func isBlankLine(_ line: UnsafeRawBufferPointer) -> Bool {
        for c in line where c != 0x20 && c != 0x09 && c != 0x0D && c != 0x0A && c != delimiter { return false }
        return true
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
