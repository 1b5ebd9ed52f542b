/// One CSV record as parsed: where its fields lie in the block's byte buffer.
struct RecordInfo {
    /// Row number as a spreadsheet shows it, running on across archive entries.
    var row: Int
    /// Index of the record's first field in `RecordBlock.fieldEnds`.
    var firstField: Int
    var fieldCount: Int
    /// The first record of an archive entry.
    var isHeader: Bool
    /// libcsv stopped on bad quoting inside this record; its fields are what was read.
    var malformed: Bool
}

/// A block of parsed records: the field bytes back to back in one buffer, field ends in one
/// array. Blocks are filled by `CSVReader` and handed to the stages whole, so each stage
/// runs a tight loop over many rows and the stage timings cost nothing per row.
struct RecordBlock: ~Copyable {
    var bytes = ByteBuffer(capacity: 1 << 22)
    /// Byte offset just past each field; a field starts where the previous one ended.
    var fieldEnds: [Int] = []
    var records: [RecordInfo] = []
    /// Fields of the record still being parsed start here.
    var pendingFirstField = 0

    init() {
        fieldEnds.reserveCapacity(1 << 15)
        records.reserveCapacity(1 << 12)
    }

    @inline(__always)
    func field(_ record: RecordInfo, _ i: Int) -> UnsafeBufferPointer<UInt8> {
        let f = record.firstField + i
        let start = f == 0 ? 0 : fieldEnds[f - 1]
        return bytes.slice(start, fieldEnds[f])
    }

    /// Offset in `bytes` of a pointer into a field (0 for an empty field without storage).
    @inline(__always)
    func offset(of p: UnsafePointer<UInt8>?) -> Int {
        guard let p else { return 0 }
        return p - UnsafePointer(bytes.base)
    }

    /// Empties this block and moves into it the fields of the record `full` is still
    /// parsing, leaving `full` with its complete records only.
    mutating func takePending(from full: inout RecordBlock) {
        bytes.removeAll()
        fieldEnds.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
        let keepFrom = full.pendingFirstField
        let byteStart = keepFrom == 0 ? 0 : full.fieldEnds[keepFrom - 1]
        bytes.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: full.bytes.bytes[byteStart...])))
        for end in full.fieldEnds[keepFrom...] { fieldEnds.append(end - byteStart) }
        pendingFirstField = 0
        full.truncate(bytes: byteStart, fields: keepFrom)
    }

    private mutating func truncate(bytes n: Int, fields: Int) {
        bytes.truncate(to: n)
        fieldEnds.removeSubrange(fields...)
    }
}

/// A record block on the heap, so the parsing thread and the stages can pass it back and
/// forth without copying. Boxes are reused: a job allocates three.
final class BlockBox: @unchecked Sendable {
    // @unchecked: a box is used by one thread at a time; the channel hands it over.
    let pointer: UnsafeMutablePointer<RecordBlock>

    init() {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: RecordBlock())
    }

    deinit {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}
