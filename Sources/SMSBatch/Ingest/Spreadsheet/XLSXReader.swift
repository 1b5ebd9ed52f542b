import Foundation
import Synchronization

/// What an Excel workbook's small parts say (read in a first pass over the zip, which seeks
/// over everything else): its sheets in order and where each one is, how each cell style
/// shows a number, the date system, and where the shared-strings table is.
struct XLSXWorkbook {
    struct Sheet { var name: String; var path: String? }
    var sheets: [Sheet] = []
    var date1904 = false
    /// The number format of each cell style (`s` attribute), by index.
    var styles: [CellFormat] = []
    /// The shared-strings part (from the relationships; Excel's usual name without them).
    var sharedStringsPath = "xl/sharedStrings.xml"
    /// Decompressed bytes read in the first pass.
    var expandedBytes: Int64 = 0
    var hasWorkbook = false

    /// Reads the parts; `limit` bounds the bytes decompressed.
    static func read(path: String, limit: Int64) throws(SheetError) -> XLSXWorkbook {
        var book = XLSXWorkbook()
        let file: InputFile
        do { file = try InputFile(path: path) } catch { throw .unreadable("cannot read the workbook again: \(error.reason)") }
        let archive = ArchiveStream(input: file, skippable: true)
        var relations: [String: (target: String, type: String)] = [:]
        var sheetRelations: [(name: String, id: String)] = []
        var customFormats: [Int: CellFormat] = [:]
        var styleIDs: [Int] = []
        do {
            while let entry = try archive.nextEntry() {
                let name = entry.name.lowercased()
                let source: XMLStream.Source = { () throws(ArchiveError) -> UnsafeRawBufferPointer? in
                    let block = try archive.nextBlock()
                    if archive.expandedBytes > limit { throw ArchiveError(message: SheetError.overLimit) }
                    return block
                }
                switch name {
                case "xl/workbook.xml":
                    book.hasWorkbook = true
                    let xml = XMLStream(source: source)
                    let sheet = xml.name("sheet"), workbookPr = xml.name("workbookPr")
                    try parts(xml, entry.name) {
                        guard xml.node == .element else { return }
                        if xml.localName == sheet {
                            var n = "", id = ""
                            xml.attributes { a, v in
                                if a == xml.name("name") { n = v.string } else if a == xml.name("id") { id = v.string }
                            }
                            sheetRelations.append((n, id))
                        } else if xml.localName == workbookPr {
                            xml.attributes { a, v in if a == xml.name("date1904") { book.date1904 = v.string == "1" || v.string == "true" } }
                        }
                    }
                case "xl/_rels/workbook.xml.rels":
                    let xml = XMLStream(source: source)
                    let relationship = xml.name("Relationship")
                    try parts(xml, entry.name) {
                        guard xml.node == .element, xml.localName == relationship else { return }
                        var id = "", target = "", type = ""
                        xml.attributes { a, v in
                            if a == xml.name("Id") { id = v.string } else if a == xml.name("Target") { target = v.string } else if a == xml.name("Type") { type = v.string }
                        }
                        relations[id] = (target, type)
                    }
                case "xl/styles.xml":
                    let xml = XMLStream(source: source)
                    let numFmt = xml.name("numFmt"), cellXfs = xml.name("cellXfs"), xf = xml.name("xf")
                    var inCellXfs = false
                    try parts(xml, entry.name) {
                        if xml.localName == cellXfs { inCellXfs = xml.node == .element; return }
                        guard xml.node == .element else { return }
                        if xml.localName == numFmt {
                            var id = -1, code = ""
                            xml.attributes { a, v in
                                if a == xml.name("numFmtId") { id = Int(v.string) ?? -1 } else if a == xml.name("formatCode") { code = v.string }
                            }
                            if id >= 0 { customFormats[id] = CellFormat.parse(code) }
                        } else if inCellXfs && xml.localName == xf {
                            var id = 0
                            xml.attributes { a, v in if a == xml.name("numFmtId") { id = Int(v.string) ?? 0 } }
                            styleIDs.append(id)
                        }
                    }
                default:
                    continue
                }
            }
        } catch let error as ArchiveError {
            throw error.message == SheetError.overLimit ? .expandedTooLarge : .unreadable("corrupt or truncated input: \(error.message)")
        } catch let error as SheetError {
            throw error
        } catch {
            throw .unreadable("\(error)")
        }
        book.expandedBytes = archive.expandedBytes
        book.styles = styleIDs.map { customFormats[$0] ?? CellFormat.builtIn($0) }
        if let strings = relations.values.first(where: { $0.type.hasSuffix("/sharedStrings") }) {
            book.sharedStringsPath = partPath(strings.target)
        }
        book.sheets = sheetRelations.map { s in
            guard let r = relations[s.id], r.type.hasSuffix("/worksheet") else { return Sheet(name: s.name, path: nil) }
            return Sheet(name: s.name, path: partPath(r.target))
        }
        return book
    }

    /// A relationship target as a zip entry name: relative to `xl/`, or absolute from the root.
    static func partPath(_ target: String) -> String {
        var parts: [Substring] = target.hasPrefix("/") ? [] : ["xl"]
        for p in target.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { _ = parts.popLast(); continue }
            parts.append(p)
        }
        return parts.joined(separator: "/")
    }

    /// Runs `each` on every node of a part; a damaged part names itself.
    private static func parts(_ xml: XMLStream, _ part: String, _ each: () -> Void) throws(SheetError) {
        do {
            while try xml.next() { each() }
        } catch {
            throw SheetError.damaged(part, error.message)
        }
    }
}

/// The workbook could not be read as a sheet of rows.
enum SheetError: Error {
    /// The file is not what a workbook must be; the message says why.
    case unreadable(String)
    case expandedTooLarge

    static let overLimit = "expands past input.max_expanded_bytes"

    static func damaged(_ part: String, _ message: String) -> SheetError {
        message == overLimit ? .expandedTooLarge : .unreadable("the workbook's \(part) is damaged: \(message)")
    }
}

/// Decompressed bytes counted by passes on two threads.
final class SharedCounter: Sendable {
    private let value: Atomic<Int64>
    init(_ start: Int64) { value = Atomic(start) }
    /// Adds `n`; the new total.
    func add(_ n: Int64) -> Int64 { value.add(n, ordering: .relaxed).newValue }
}

/// The shared-strings table, read on a thread of its own while the sheet streams: an Excel
/// workbook keeps the table after its sheets, and reading the two one after the other took
/// twice as long (measured on the 700,000-row bench workbook: 2.0 s of table alone).
final class SharedStringsLoader: @unchecked Sendable {
    // @unchecked: `result` is written once by the thread, under `lock`, and read after `done`.
    private let lock = NSLock()
    private var result: Result<SharedStrings, SheetError>?
    private let done = DispatchSemaphore(value: 0)
    private let stop = Atomic<Bool>(false)

    init(path: String, part: String, limit: Int64, expanded: SharedCounter) {
        let thread = Thread { [self] in
            let r = Result { () throws(SheetError) in
                try SharedStrings.load(path: path, part: part, limit: limit, expanded: expanded, cancelled: { [self] in stop.load(ordering: .relaxed) })
            }
            lock.withLock { result = r }
            done.signal()
        }
        thread.name = "smsbatch-shared-strings"
        thread.start()
    }

    /// The table when it is read; nil while it is not.
    func ready() throws(SheetError) -> SharedStrings? {
        guard let r = lock.withLock({ result }) else { return nil }
        return try r.get()
    }

    /// Waits for the table.
    func wait() throws(SheetError) -> SharedStrings {
        done.wait()
        done.signal()
        return try lock.withLock({ result! }).get()
    }

    /// Stops the read (the job ended early) and waits for the thread to end.
    func cancel() {
        stop.store(true, ordering: .relaxed)
        done.wait()
        done.signal()
    }
}

/// An .xlsx shared-strings table: every string's UTF-8 bytes, kept in chunks of 16 MiB that
/// are filled one after the other (no doubling and copying as it grows: the table is the one
/// part of a workbook held whole, so its peak is its size).
final class SharedStrings {
    private static let chunkSize = 16 << 20
    private var chunks: [UnsafeMutablePointer<UInt8>] = []
    private var used = 0, capacity = 0
    private struct Span { var chunk: Int32; var start: Int32; var count: Int32 }
    private var spans: [Span] = []

    var count: Int { spans.count }

    deinit { for c in chunks { c.deallocate() } }

    func string(_ i: Int) -> UnsafeBufferPointer<UInt8>? {
        guard i >= 0 && i < spans.count else { return nil }
        let s = spans[i]
        return UnsafeBufferPointer(start: chunks[Int(s.chunk)] + Int(s.start), count: Int(s.count))
    }

    private func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        if used + bytes.count > capacity || chunks.isEmpty {
            capacity = max(SharedStrings.chunkSize, bytes.count)
            chunks.append(.allocate(capacity: capacity))
            used = 0
        }
        if let base = bytes.baseAddress { (chunks[chunks.count - 1] + used).update(from: base, count: bytes.count) }
        spans.append(Span(chunk: Int32(chunks.count - 1), start: Int32(used), count: Int32(bytes.count)))
        used += bytes.count
    }

    /// Reads the table of the workbook at `path` (an empty one when it has none), in a pass
    /// of its own that seeks over the other parts. `expanded` counts the bytes decompressed
    /// by every pass of the job against `limit`; `cancelled` ends the read early.
    static func load(path: String, part: String, limit: Int64, expanded: SharedCounter, cancelled: @escaping @Sendable () -> Bool) throws(SheetError) -> SharedStrings {
        let file: InputFile
        do { file = try InputFile(path: path) } catch { throw .unreadable("cannot read the workbook again: \(error.reason)") }
        var table = SharedStrings()
        _ = try WorkbookSource.stream(part, of: file, skippable: true, expanded: expanded, limit: limit, cancelled: cancelled) { xml throws(SheetError) in
            table = try read(xml, part: part)
        }
        return table
    }

    /// `<si>` items: plain `<t>` or rich-text runs `<r><t>`; phonetic runs (`<rPh>`) are not
    /// what the cell shows.
    static func read(_ xml: XMLStream, part: String) throws(SheetError) -> SharedStrings {
        let table = SharedStrings()
        let si = xml.name("si"), t = xml.name("t"), rPh = xml.name("rPh")
        var inT = false, inPhonetic = false
        var item: [UInt8] = []
        do {
            while try xml.next() {
                switch xml.node {
                case .element:
                    let n = xml.localName
                    if n == si {
                        item.removeAll(keepingCapacity: true)
                    } else if n == t { inT = true }
                    else if n == rPh { inPhonetic = true }
                case .endElement:
                    let n = xml.localName
                    if n == si {
                        if !item.isEmpty { OfficeText.decodeEscapes(&item, from: 0) }
                        item.withUnsafeBufferPointer { table.append($0) }
                    } else if n == t { inT = false } else if n == rPh { inPhonetic = false }
                case .text:
                    if inT && !inPhonetic { item.append(contentsOf: xml.value) }
                case .other:
                    break
                }
            }
        } catch {
            throw SheetError.damaged(part, error.message)
        }
        return table
    }
}

/// OOXML's escape for characters XML cannot hold: `_xHHHH_` (`_x000D_` is a carriage
/// return; `_x005F_` escapes an underscore that would otherwise start one).
enum OfficeText {
    static func decodeEscapes(_ bytes: inout [UInt8], from start: Int) {
        guard bytes[start...].contains(0x5F) else { return }  // no `_`, nothing to decode
        var out: [UInt8] = []
        var i = start
        func hex(_ b: UInt8) -> UInt32? {
            switch b {
            case 0x30...0x39: UInt32(b - 0x30)
            case 0x41...0x46: UInt32(b - 0x37)
            case 0x61...0x66: UInt32(b - 0x57)
            default: nil
            }
        }
        while i < bytes.count {
            if bytes[i] == 0x5F, i + 6 < bytes.count, bytes[i + 1] == 0x78, bytes[i + 6] == 0x5F,
               let a = hex(bytes[i + 2]), let b = hex(bytes[i + 3]), let c = hex(bytes[i + 4]), let d = hex(bytes[i + 5]),
               let scalar = Unicode.Scalar(a << 12 | b << 8 | c << 4 | d) {
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
                i += 7
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        bytes.replaceSubrange(start..., with: out)
    }
}

/// Streams one worksheet's `<sheetData>` into rows: cells placed by their references, each
/// cell's value as the sheet shows it (shared and inline strings, numbers in their format,
/// dates in the SPEC's form, TRUE/FALSE, error values as written).
struct XLSXSheetReader {
    let book: XLSXWorkbook
    let table: SharedStringsLoader
    /// The table once it is read: until then, rows with shared strings wait in `SheetRows`.
    private var strings: SharedStrings?
    /// Waiting rows may take this many bytes before the sheet waits for the table.
    static let maxPendingBytes = 32 << 20

    init(book: XLSXWorkbook, table: SharedStringsLoader) {
        self.book = book
        self.table = table
    }

    /// After each row: the table, as soon as it is there (or once the waiting rows take too
    /// much room), and the waiting rows made records. False when the job wants no more.
    private mutating func rowDone(_ rows: SheetRows, _ rowEnded: () -> Bool) throws(SheetError) -> Bool {
        if strings == nil {
            if rows.pendingBytes > XLSXSheetReader.maxPendingBytes { strings = try table.wait() } else { strings = try table.ready() }
            if let strings, rows.pendingRows > 0 { return rows.replayPending(strings, rowEnded: rowEnded) }
            if strings == nil { return true }
        }
        return rowEnded()
    }

    /// At the end of the sheet: the rows still waiting.
    private mutating func finish(_ rows: SheetRows, _ rowEnded: () -> Bool) throws(SheetError) {
        if strings == nil { strings = try table.wait() }
        if rows.pendingRows > 0, let strings { _ = rows.replayPending(strings, rowEnded: rowEnded) }
    }

    /// Reads rows into `rows`; `rowEnded` is called after each row and returns false to stop.
    mutating func read(_ xml: XMLStream, part: String, into rows: SheetRows, rowEnded: () -> Bool) throws(SheetError) {
        let rowName = xml.name("row"), c = xml.name("c"), v = xml.name("v"), isName = xml.name("is"), t = xml.name("t"), rPh = xml.name("rPh")
        let rName = xml.name("r"), sName = xml.name("s"), tName = xml.name("t")
        var row = 0, nextColumn = 0
        var column = 0, type = CellType.number, style = 0
        var inV = false, inInline = false, inT = false, inPhonetic = false
        var text: [UInt8] = []
        var shown = ByteBuffer(capacity: 256)
        func endCell() throws(SheetError) {
            if column >= SheetRows.maxColumns { throw .unreadable("\(part) line \(xml.line): a cell past column XFD") }
            shown.removeAll()
            if type == .shared && strings == nil {
                if let i = text.withUnsafeBufferPointer(XLSXSheetReader.integer) { rows.addDeferredCell(column: column, index: i) }
            } else {
                value(type: type, style: style, text: &text, into: &shown)
                rows.addCell(column: column, shown)
            }
            nextColumn = column + 1
        }
        do {
            while try xml.next() {
                switch xml.node {
                case .element:
                    let n = xml.localName
                    if n == c {
                        column = nextColumn; type = .number; style = 0; text.removeAll(keepingCapacity: true)
                        xml.attributes { a, value in
                            if a == rName { column = XLSXSheetReader.column(value) ?? nextColumn }
                            else if a == tName { type = CellType(value) }
                            else if a == sName { style = XLSXSheetReader.integer(value) ?? 0 }
                        }
                    } else if n == v {
                        inV = true
                    } else if n == isName {
                        inInline = true
                    } else if n == t {
                        inT = inInline
                    } else if n == rPh {
                        inPhonetic = true
                    } else if n == rowName {
                        var number = rows.lastRow + 1
                        xml.attributes { a, value in if a == rName { number = Int(value.string) ?? number } }
                        row = number
                        nextColumn = 0
                    }
                case .endElement:
                    let n = xml.localName
                    if n == c { try endCell() }
                    else if n == v { inV = false }
                    else if n == isName { inInline = false }
                    else if n == t { inT = false }
                    else if n == rPh { inPhonetic = false }
                    else if n == rowName {
                        rows.endRow(row)
                        if try !rowDone(rows, rowEnded) { return }
                    }
                case .text:
                    if inV || (inT && !inPhonetic) { text.append(contentsOf: xml.value) }
                case .other:
                    break
                }
            }
            try finish(rows, rowEnded)
        } catch let error as SheetError {
            throw error
        } catch {
            throw SheetError.damaged(part, (error as? XMLStreamError)?.message ?? "\(error)")
        }
    }

    /// A cell's `t` attribute.
    enum CellType {
        case number, shared, inline, formulaString, boolean, error, isoDate

        /// From the attribute's bytes, without a String per cell.
        init(_ t: UnsafeBufferPointer<UInt8>) {
            func equals(_ word: StaticString) -> Bool {
                t.count == word.utf8CodeUnitCount && (t.isEmpty || memcmp(t.baseAddress!, word.utf8Start, t.count) == 0)
            }
            if equals("s") { self = .shared }
            else if equals("inlineStr") { self = .inline }
            else if equals("str") { self = .formulaString }
            else if equals("b") { self = .boolean }
            else if equals("e") { self = .error }
            else if equals("d") { self = .isoDate }
            else { self = .number }
        }
    }

    /// What the cell shows, from its type, style and the text of its `<v>` or `<is>`.
    private func value(type: CellType, style: Int, text: inout [UInt8], into out: inout ByteBuffer) {
        switch type {
        case .shared:
            if let i = text.withUnsafeBufferPointer(XLSXSheetReader.integer), let s = strings?.string(i) {
                out.append(s)
            }
        case .inline, .formulaString:
            if !text.isEmpty { OfficeText.decodeEscapes(&text, from: 0) }
            text.withUnsafeBufferPointer { out.append($0) }
        case .boolean:
            if !text.isEmpty { out.append(text == [0x30] ? "FALSE" : "TRUE") }
        case .isoDate:
            out.append(OpenDocumentSheetReader.dateText(String(decoding: text, as: UTF8.self)))
        case .error:
            text.withUnsafeBufferPointer { out.append($0) }
        case .number:
            guard !text.isEmpty else { return }
            let format = style >= 0 && style < book.styles.count ? book.styles[style] : .general
            text.append(0)
            var end: UnsafeMutablePointer<CChar>?
            let number = text.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { p in
                    let v = strtod(p, &end)
                    // The whole text must be the number (spaces around it aside).
                    var rest = end.map { UnsafePointer($0) } ?? p
                    while rest.pointee == 0x20 { rest += 1 }
                    return end.map { UnsafePointer($0) } == p || rest.pointee != 0 ? nil : v
                }
            }
            text.removeLast()
            guard let number else { text.withUnsafeBufferPointer { out.append($0) }; return }
            if format == .general, number == number.rounded(), abs(number) < 1e15 {
                out.appendDecimal(Int(number))  // the common case, without a String
            } else {
                out.append(format.display(number, date1904: book.date1904))
            }
        }
    }

    /// A non-negative decimal integer written in ASCII digits; nil for anything else.
    static func integer(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var n = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    /// The column of a cell reference (`AB12` → 27), from 0; nil when it has no letters.
    static func column(_ reference: UnsafeBufferPointer<UInt8>) -> Int? {
        var n = 0, letters = 0
        for b in reference {
            let upper = b & ~0x20
            guard upper >= 0x41 && upper <= 0x5A else { break }
            n = n * 26 + Int(upper - 0x40)
            letters += 1
            if letters > 4 { return SheetRows.maxColumns }
        }
        return letters == 0 ? nil : n - 1
    }
}
