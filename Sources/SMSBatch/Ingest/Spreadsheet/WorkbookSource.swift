/// A spreadsheet as a recipient file: an Excel workbook (.xlsx, .xlsm) or an OpenDocument
/// spreadsheet (.ods), first sheet or `input.sheet`. libarchive opens the zip; libxml2's
/// streaming reader reads the sheet, so a large sheet costs the memory of one row (plus, for
/// .xlsx, the shared-strings table, read on a thread of its own while the sheet streams).
struct WorkbookSource {
    enum Kind { case xlsx, ods }

    let file: InputFile
    let kind: Kind
    let sheet: String?
    let maxExpandedBytes: Int64

    /// Reads the sheet into `rows`; `rowEnded` is called after every row and returns false
    /// to stop.
    func read(into rows: SheetRows, rowEnded: () -> Bool) throws(SheetError) {
        switch kind {
        case .xlsx: try readXLSX(into: rows, rowEnded: rowEnded)
        case .ods: try readODS(into: rows, rowEnded: rowEnded)
        }
    }

    private func readXLSX(into rows: SheetRows, rowEnded: () -> Bool) throws(SheetError) {
        let book = try XLSXWorkbook.read(path: file.path, limit: maxExpandedBytes)
        guard book.hasWorkbook else { throw .unreadable("an Excel workbook without its xl/workbook.xml") }
        let chosen: XLSXWorkbook.Sheet?
        if let sheet {
            chosen = book.sheets.first { $0.name == sheet } ?? book.sheets.first { $0.name.lowercased() == sheet.lowercased() }
            guard chosen != nil else { throw .unreadable(Self.noSheet(sheet, book.sheets.map(\.name))) }
        } else {
            chosen = book.sheets.first { $0.path != nil }
        }
        guard let path = chosen?.path else {
            throw .unreadable(sheet.map { "sheet \"\($0)\" is not a worksheet (a chart?)" } ?? "the workbook has no worksheet")
        }
        let expanded = SharedCounter(book.expandedBytes)
        let table = SharedStringsLoader(path: file.path, part: book.sharedStringsPath, limit: maxExpandedBytes, expanded: expanded)
        defer { table.cancel() }
        let found = try WorkbookSource.stream(path, of: file, expanded: expanded, limit: maxExpandedBytes) { xml throws(SheetError) in
            var reader = XLSXSheetReader(book: book, table: table)
            try reader.read(xml, part: path, into: rows, rowEnded: rowEnded)
        }
        if !found { throw .unreadable("the workbook lists sheet \"\(chosen!.name)\" at \(path), which it does not hold") }
    }

    private func readODS(into rows: SheetRows, rowEnded: () -> Bool) throws(SheetError) {
        let expanded = SharedCounter(0)
        var reader = OpenDocumentSheetReader(sheet: sheet, expanded: expanded, limit: maxExpandedBytes)
        var matched = false
        let found = try WorkbookSource.stream("content.xml", of: file, expanded: expanded, limit: maxExpandedBytes) { xml throws(SheetError) in
            matched = try reader.read(xml, into: rows, rowEnded: rowEnded)
        }
        if !found { throw .unreadable("an OpenDocument file without its content.xml") }
        if !matched {
            throw .unreadable(sheet.map { Self.noSheet($0, reader.tableNames) } ?? "the spreadsheet has no sheet")
        }
    }

    private static func noSheet(_ name: String, _ names: [String]) -> String {
        "no sheet named \"\(name)\" (input.sheet); the workbook's sheets: " + names.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    /// Streams the zip entry of `file` named `name` (any case) to `body` as XML; false when
    /// the zip has no such entry. `skippable`: the other entries are seeked over, not read
    /// (a pass of its own over a second handle). Every block counts in `expanded` against
    /// `limit`; `cancelled` ends the entry early.
    static func stream(_ name: String, of file: InputFile, skippable: Bool = false, expanded: SharedCounter, limit: Int64,
                       cancelled: @escaping @Sendable () -> Bool = { false },
                       _ body: (XMLStream) throws(SheetError) -> Void) throws(SheetError) -> Bool {
        let archive = ArchiveStream(input: file, skippable: skippable)
        do {
            while let entry = try archive.nextEntry() {
                guard entry.name.lowercased() == name.lowercased() else { continue }
                try body(XMLStream(source: { () throws(ArchiveError) -> UnsafeRawBufferPointer? in
                    guard !cancelled() else { return nil }
                    let block = try archive.nextBlock()
                    if expanded.add(Int64(block?.count ?? 0)) > limit { throw ArchiveError(message: SheetError.overLimit) }
                    return block
                }))
                return true
            }
        } catch let error as ArchiveError {
            throw .unreadable("corrupt or truncated input: \(error.message)")
        } catch let error as SheetError {
            throw error
        } catch {
            throw .unreadable("\(error)")
        }
        return false
    }
}
