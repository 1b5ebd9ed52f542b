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

    /// Removes the complete records, keeping the fields of a record still being parsed.
    mutating func removeCompleteRecords() {
        let keepFrom = pendingFirstField
        let byteStart = keepFrom == 0 ? 0 : fieldEnds[keepFrom - 1]
        bytes.removeFirst(byteStart)
        let pending = fieldEnds[keepFrom...].map { $0 - byteStart }
        fieldEnds.removeAll(keepingCapacity: true)
        fieldEnds.append(contentsOf: pending)
        records.removeAll(keepingCapacity: true)
        pendingFirstField = 0
    }
}
