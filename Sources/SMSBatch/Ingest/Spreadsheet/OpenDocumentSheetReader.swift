/// Streams one table of an OpenDocument spreadsheet's `content.xml` into rows. A cell shows
/// its paragraphs (`<text:p>`, joined by line feeds; `<text:s>`, tabs and line breaks as
/// written; comments left out), which is the text the application displayed when it saved;
/// a date cell gives its date in the SPEC's form. Repeated rows and cells are expanded, but
/// empty ones only move the row and column on (a sheet ends with a million empty rows).
struct OpenDocumentSheetReader {
    /// The table to read: by name, or the first one.
    let sheet: String?
    /// Repeats cost what they expand to, against `input.max_expanded_bytes` with the bytes
    /// decompressed: a few hundred bytes of XML can ask for a million rows of 16,384 cells.
    let expanded: SharedCounter
    let limit: Int64

    /// The names of the tables seen (to say which there are when `sheet` is not found).
    private(set) var tableNames: [String] = []

    /// Reads the chosen table into `rows`; `rowEnded` returns false to stop. Returns false
    /// when no table matched.
    mutating func read(_ xml: XMLStream, into rows: SheetRows, rowEnded: () -> Bool) throws(SheetError) -> Bool {
        let table = xml.name("table"), tableRow = xml.name("table-row"), cell = xml.name("table-cell"), covered = xml.name("covered-table-cell")
        let p = xml.name("p"), s = xml.name("s"), tab = xml.name("tab"), lineBreak = xml.name("line-break"), annotation = xml.name("annotation")
        let nameAttr = xml.name("name"), rowsRepeated = xml.name("number-rows-repeated"), columnsRepeated = xml.name("number-columns-repeated")
        let valueType = xml.name("value-type"), valueAttr = xml.name("value"), dateValue = xml.name("date-value"), count = xml.name("c")
        var depth = 0, active = false, found = false
        var rowRepeat = 1, column = 0
        var cellRepeat = 1, type = "", value = "", date = ""
        var paragraphs = 0, inParagraph = 0, inAnnotation = 0, inCell = false
        var text: [UInt8] = []
        var shown = ByteBuffer(capacity: 256)
        func endCell() throws(SheetError) {
            inCell = false
            shown.removeAll()
            if type == "date" && !date.isEmpty { shown.append(OpenDocumentSheetReader.dateText(date)) }
            else if !text.isEmpty { text.withUnsafeBufferPointer { shown.append($0) } }
            else if ["float", "percentage", "currency"].contains(type) { shown.append(value) }
            if shown.count > 0 {
                if column + cellRepeat > SheetRows.maxColumns { throw .unreadable("content.xml line \(xml.line): a cell past column \(SheetRows.maxColumns)") }
                if cellRepeat > 1, expanded.add(Int64(shown.count + 1) * Int64(cellRepeat - 1)) > limit { throw .expandedTooLarge }
                for k in 0..<cellRepeat { rows.addCell(column: column + k, shown) }
            }
            column = min(column + cellRepeat, SheetRows.maxColumns + 1)
        }
        do {
            while try xml.next() {
                let n = xml.localName
                switch xml.node {
                case .element:
                    if n == table {
                        depth += 1
                        guard depth == 1 else { continue }
                        var name = ""
                        xml.attributes { a, v in if a == nameAttr { name = v.string } }
                        tableNames.append(name)
                        active = !found && (sheet == nil || sheet == name || sheet?.lowercased() == name.lowercased())
                        if active { found = true }
                    } else if !active || depth != 1 {
                        continue
                    } else if n == tableRow {
                        rowRepeat = 1
                        column = 0
                        xml.attributes { a, v in if a == rowsRepeated { rowRepeat = max(1, Int(v.string) ?? 1) } }
                    } else if n == cell || n == covered {
                        cellRepeat = 1; type = ""; value = ""; date = ""
                        text.removeAll(keepingCapacity: true)
                        paragraphs = 0
                        inCell = true
                        xml.attributes { a, v in
                            if a == columnsRepeated { cellRepeat = max(1, min(Int(v.string) ?? 1, SheetRows.maxColumns)) }
                            else if a == valueType { type = v.string }
                            else if a == valueAttr { value = v.string }
                            else if a == dateValue { date = v.string }
                        }
                    } else if inCell && n == annotation {
                        inAnnotation += 1
                    } else if inCell && inAnnotation == 0 {
                        if n == p {
                            if paragraphs > 0 { text.append(0x0A) }
                            paragraphs += 1
                            inParagraph += 1
                        } else if inParagraph > 0 && n == s {
                            var spaces = 1
                            xml.attributes { a, v in if a == count { spaces = max(1, min(Int(v.string) ?? 1, 1000)) } }
                            text.append(contentsOf: repeatElement(0x20, count: spaces))
                        } else if inParagraph > 0 && n == tab {
                            text.append(0x09)
                        } else if inParagraph > 0 && n == lineBreak {
                            text.append(0x0A)
                        }
                    }
                case .endElement:
                    if n == table {
                        depth -= 1
                        if depth == 0 && active { return true }
                    } else if !active || depth != 1 {
                        continue
                    } else if n == tableRow {
                        if rowRepeat > 1, rows.currentRowBytes > 0,
                           expanded.add(Int64(rows.currentRowBytes) * Int64(min(rowRepeat, SheetRows.maxRows) - 1)) > limit {
                            throw SheetError.expandedTooLarge
                        }
                        rows.endRow(rows.lastRow + 1, repeated: rowRepeat)
                        if !rowEnded() { return true }
                    } else if n == cell || n == covered {
                        try endCell()
                    } else if n == annotation && inAnnotation > 0 {
                        inAnnotation -= 1
                    } else if n == p && inParagraph > 0 {
                        inParagraph -= 1
                    }
                case .text:
                    if active && inParagraph > 0 && inAnnotation == 0 { text.append(contentsOf: xml.value) }
                case .other:
                    break
                }
            }
        } catch let error as SheetError {
            throw error
        } catch {
            throw SheetError.damaged("content.xml", (error as? XMLStreamError)?.message ?? "\(error)")
        }
        return found
    }

    /// An ISO 8601 date or date-time (`2026-12-05`, `2026-12-05T10:30:00.5`) in the SPEC's
    /// `YYYY-MM-DD HH:MM:SS`; anything else as written.
    static func dateText(_ iso: String) -> String {
        let chars = Array(iso.utf8)
        guard chars.count >= 10, chars[4] == 0x2D, chars[7] == 0x2D else { return iso }
        let day = String(decoding: chars[0..<10], as: UTF8.self)
        guard chars.count >= 19, chars[10] == 0x54 || chars[10] == 0x20 else { return day + " 00:00:00" }
        return day + " " + String(decoding: chars[11..<19], as: UTF8.self)
    }
}
