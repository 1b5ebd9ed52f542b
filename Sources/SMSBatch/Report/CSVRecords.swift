import Foundation
internal import CCSV

/// Reads a CSV file smsbatch wrote (a batch file being given its delivery columns) record by
/// record with libcsv: a UTF-8 BOM at the start is skipped, fields come as bytes.
enum CSVRecords {
    /// Calls `body` with each record's fields, in order, and stops after `limit` records (the
    /// first rows of a large rejects.csv are read without reading the rest). Throws when the
    /// file cannot be read or its quoting is broken (it was not written by smsbatch, or was
    /// edited).
    static func read(path: String, limit: Int = .max, _ body: ([[UInt8]]) throws(ReportError) -> Void) throws(ReportError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReportError(path: path, errno: errno) }
        defer { close(fd) }
        let collector = Collector()
        var parser = csv_parser()
        // No trimming: a message ending in a space keeps it.
        LibCSV.start(&parser)
        defer { csv_free(&parser) }
        let context = Unmanaged.passUnretained(collector).toOpaque()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var first = true
        var left = limit
        while left > 0 {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw ReportError(path: path, errno: errno) }
            if n == 0 { break }
            var skip = 0
            if first, n >= 3, chunk[0] == 0xEF, chunk[1] == 0xBB, chunk[2] == 0xBF { skip = 3 }
            first = false
            let parsed = chunk.withUnsafeBytes { p in
                csv_parse(&parser, p.baseAddress! + skip, n - skip, csvField, csvRecord, context)
            }
            // Records before a quoting error are whole: they count towards `limit` first.
            try drain(collector, &left, body)
            if parsed != n - skip && left > 0 { throw ReportError(path: path, errno: EILSEQ) }
        }
        guard left > 0 else { return }
        if csv_fini(&parser, csvField, csvRecord, context) != 0 { throw ReportError(path: path, errno: EILSEQ) }
        try drain(collector, &left, body)
    }

    private static func drain(_ c: Collector, _ left: inout Int, _ body: ([[UInt8]]) throws(ReportError) -> Void) throws(ReportError) {
        let records = c.records
        c.records.removeAll(keepingCapacity: true)
        for r in records where left > 0 {
            left -= 1
            try body(r)
        }
    }

    private final class Collector {
        var fields: [[UInt8]] = []
        var records: [[[UInt8]]] = []
    }

    private static let csvField: @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?) -> Void = { data, len, ctx in
        let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
        c.fields.append(data.map { Array(UnsafeRawBufferPointer(start: $0, count: len)) } ?? [])
    }

    private static let csvRecord: @convention(c) (Int32, UnsafeMutableRawPointer?) -> Void = { _, ctx in
        let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
        c.records.append(c.fields)
        c.fields.removeAll(keepingCapacity: true)
    }
}
