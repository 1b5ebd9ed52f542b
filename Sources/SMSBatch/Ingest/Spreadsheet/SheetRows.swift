/// Turns a sheet's rows, cell by cell, into the record blocks the CSV path makes, so every
/// stage after ingest cannot tell a workbook from a CSV file. A row's number is the sheet's
/// own; the first row with anything in it is the header, and its last filled cell sets the
/// width: shorter rows are filled with empty fields (a spreadsheet has no field count), and
/// a filled cell past the header's last column makes the row longer, which validation
/// reports as `wrong_field_count`. Rows with nothing in them are blank lines: no record.
final class SheetRows {
    /// Columns a sheet can have (Excel: A to XFD).
    static let maxColumns = 16_384
    /// Rows a sheet can have.
    static let maxRows = 1_048_576

    private(set) var current: BlockBox
    /// The row being read: its cells' bytes back to back, and each filled cell's column and end.
    private var cellBytes = ByteBuffer(capacity: 1 << 12)
    private var cells: [(column: Int, end: Int)] = []
    private var headerWidth: Int?
    /// The last row number given to a record or skipped as blank.
    private(set) var lastRow = 0

    init(block: BlockBox) { current = block }

    var recordCount: Int { current.pointer.pointee.records.count }
    var bufferedBytes: Int { current.pointer.pointee.bytes.count }

    /// Bytes the filled cells of the row being read take (what each repeat of it costs).
    var currentRowBytes: Int { cellBytes.count + cells.count }

    /// Adds a cell of the row being read; `column` counts from 0. An empty cell is nothing.
    func addCell(column: Int, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        cellBytes.append(UnsafeRawBufferPointer(bytes))
        cells.append((column, cellBytes.count))
    }

    func addCell(column: Int, _ bytes: borrowing ByteBuffer) {
        addCell(column: column, bytes.bytes)
    }

    /// Ends the row being read as sheet row `row` (made larger than the row before when it
    /// is not: numbers stay unique), `repeated` times over (an OpenDocument row repeat).
    /// A row with a shared string not yet known, and every row after it, waits in `pending`
    /// until `replayPending` has the table.
    func endRow(_ row: Int, repeated: Int = 1) {
        defer { cellBytes.removeAll(); cells.removeAll(keepingCapacity: true); deferred.removeAll(keepingCapacity: true) }
        let first = max(row, lastRow + 1)
        let count = max(1, min(repeated, SheetRows.maxRows + 1 - first))
        lastRow = first + count - 1
        if !deferred.isEmpty || pendingRows > 0 { keepPending(first: first, count: count) } else { emit(first: first, count: count) }
    }

    private func emit(first: Int, count: Int) {
        guard !isBlank else { return }
        if cells.count > 1 && !zip(cells, cells.dropFirst()).allSatisfy({ $0.0.column < $0.1.column }) { orderCells() }
        let lastColumn = cells.last!.column
        let width: Int
        if let headerWidth { width = max(headerWidth, lastColumn + 1) } else { width = lastColumn + 1; headerWidth = width }
        for k in 0..<count { append(row: first + k, width: width, isHeader: isFirstRecord && k == 0) }
        isFirstRecord = false
    }

    // MARK: Rows waiting for the shared-strings table

    /// Shared-string cells of the row being read whose table is not read yet: column, index.
    private var deferred: [(column: Int, index: Int)] = []
    /// Rows kept until the table is known, encoded back to back: the first row's number (64
    /// bits), then 32-bit numbers (what a sheet's columns, repeats and cells fit in): count,
    /// cells (column, shared index or -1, length, bytes).
    private var pending = ByteBuffer(capacity: 1 << 16)
    private(set) var pendingRows = 0
    /// Bytes the waiting rows take.
    var pendingBytes: Int { pending.count }

    /// Adds a shared-string cell whose text is not known yet.
    func addDeferredCell(column: Int, index: Int) {
        deferred.append((column, index))
    }

    private func keepPending(first: Int, count: Int) {
        // An index past Int32 (a hostile file) stays past the end of any table.
        func int(_ v: Int) { withUnsafeBytes(of: Int32(clamping: v)) { pending.append($0) } }
        withUnsafeBytes(of: Int64(first)) { pending.append($0) }
        int(count); int(cells.count + deferred.count)
        var start = 0
        for c in cells {
            int(c.column); int(-1); int(c.end - start)
            pending.append(UnsafeRawBufferPointer(cellBytes.slice(start, c.end)))
            start = c.end
        }
        for d in deferred { int(d.column); int(d.index); int(0) }
        pendingRows += 1
    }

    /// Makes records of the waiting rows, now that `strings` is known, in their order;
    /// `rowEnded` is called after each and returns false to stop. False when stopped.
    func replayPending(_ strings: SharedStrings, rowEnded: () -> Bool) -> Bool {
        let kept = pending.bytes
        var at = 0
        func int() -> Int {
            var v: Int32 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(kept)[at..<(at + 4)])) }
            at += 4
            return Int(v)
        }
        for _ in 0..<pendingRows {
            var first: Int64 = 0
            withUnsafeMutableBytes(of: &first) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(kept)[at..<(at + 8)])) }
            at += 8
            let count = int(), n = int()
            for _ in 0..<n {
                let column = int(), index = int(), length = int()
                if index >= 0 {
                    if let s = strings.string(index) { addCell(column: column, s) }
                } else {
                    addCell(column: column, UnsafeBufferPointer(rebasing: kept[at..<(at + length)]))
                    at += length
                }
            }
            emit(first: Int(first), count: count)
            cellBytes.removeAll()
            cells.removeAll(keepingCapacity: true)
            if !rowEnded() { pending.removeAll(); pendingRows = 0; return false }
        }
        pending.removeAll()
        pendingRows = 0
        return true
    }

    /// No record was made yet: the next one is the header.
    private var isFirstRecord = true

    /// A row of empty cells or cells of spaces and tabs only, as a blank CSV line is.
    private var isBlank: Bool {
        for b in cellBytes.bytes where b != 0x20 && b != 0x09 { return false }
        return true
    }

    /// Cells given out of column order (a hand-made file): sorted, the later of two cells in
    /// one column kept.
    private func orderCells() {
        var start = 0
        var spans: [(column: Int, start: Int, end: Int)] = []
        for c in cells { spans.append((c.column, start, c.end)); start = c.end }
        spans.sort { $0.column < $1.column || ($0.column == $1.column && $0.start < $1.start) }
        var unique: [(column: Int, start: Int, end: Int)] = []
        for s in spans { if unique.last?.column == s.column { unique[unique.count - 1] = s } else { unique.append(s) } }
        let old = Array(cellBytes.bytes)
        cellBytes.removeAll()
        cells.removeAll(keepingCapacity: true)
        for s in unique {
            old[s.start..<s.end].withUnsafeBytes { cellBytes.append($0) }
            cells.append((s.column, cellBytes.count))
        }
    }

    private func append(row: Int, width: Int, isHeader: Bool) {
        let b = current.pointer
        let firstField = b.pointee.fieldEnds.count
        var next = 0
        var start = 0
        for column in 0..<width {
            if next < cells.count && cells[next].column == column {
                b.pointee.bytes.append(UnsafeRawBufferPointer(cellBytes.slice(start, cells[next].end)))
                start = cells[next].end
                next += 1
            }
            b.pointee.fieldEnds.append(b.pointee.bytes.count)
        }
        b.pointee.records.append(RecordInfo(row: row, firstField: firstField, fieldCount: width, isHeader: isHeader, malformed: false))
        b.pointee.pendingFirstField = b.pointee.fieldEnds.count
    }

    /// Hands over the block of records and goes on filling `fresh`.
    func exchange(_ fresh: BlockBox) -> BlockBox {
        let full = current
        fresh.pointer.pointee.takePending(from: &full.pointer.pointee)
        current = fresh
        return full
    }
}
