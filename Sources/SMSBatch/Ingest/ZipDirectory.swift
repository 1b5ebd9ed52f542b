/// The entry names of a zip, read from its central directory at the end of the file without
/// reading the entries: how an office document (a workbook is a zip) is told from a zip of
/// CSVs before anything is parsed.
enum ZipDirectory {
    /// The names in the central directory; nil when the file is no zip, or its directory is
    /// missing, damaged or over 4 MiB.
    static func names(_ file: InputFile) -> [String]? {
        guard file.head(4) == [0x50, 0x4B, 0x03, 0x04], let end = end(file) else { return nil }
        let size = end.directorySize, offset = end.directoryOffset
        guard size <= 4 << 20, Int64(offset + size) <= file.size else { return nil }
        let directory = file.read(at: Int64(offset), count: size)
        guard directory.count == size else { return nil }
        var names: [String] = []
        var i = 0
        func u32(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 }
        func u16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        while i + 46 <= directory.count, u32(directory, i) == 0x0201_4B50 {
            let nameLength = u16(directory, i + 28), extra = u16(directory, i + 30), comment = u16(directory, i + 32)
            guard i + 46 + nameLength <= directory.count else { return nil }
            names.append(String(decoding: directory[(i + 46)..<(i + 46 + nameLength)], as: UTF8.self))
            i += 46 + nameLength + extra + comment
        }
        return names
    }

    /// A zip's end-of-central-directory record ("PK\u{5}\u{6}", within the last 64 KiB + 22
    /// bytes): the entries it lists (nil for zip64, which counts them elsewhere) and where the
    /// directory is. nil when the file has none (not a zip, or cut off).
    static func end(_ file: InputFile) -> (entries: Int?, directorySize: Int, directoryOffset: Int)? {
        let tail = file.tail(65_557)
        guard tail.count >= 22, let at = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
            tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06
        }) else { return nil }
        func u32(_ i: Int) -> Int { Int(tail[i]) | Int(tail[i + 1]) << 8 | Int(tail[i + 2]) << 16 | Int(tail[i + 3]) << 24 }
        let total = Int(tail[at + 10]) | Int(tail[at + 11]) << 8
        return (total == 0xFFFF ? nil : total, u32(at + 12), u32(at + 16))
    }

    /// An office document a zip can be.
    enum Document: Equatable {
        /// A spreadsheet smsbatch reads.
        case workbook(WorkbookSource.Kind)
        /// One it does not: what it is, for the rejection.
        case other(String)

        /// What the file is, for a rejection.
        var description: String {
            switch self {
            case .workbook(.xlsx): "an Excel workbook (.xlsx)"
            case .workbook(.ods): "an OpenDocument file (.ods)"
            case .other(let what): what
            }
        }
    }

    /// What an office document is, by the names a zip holds; nil for any other zip.
    static func document(_ names: [String]) -> Document? {
        let set = Set(names)
        if set.contains("xl/workbook.xml") { return .workbook(.xlsx) }
        if set.contains("mimetype") && set.contains("content.xml") { return .workbook(.ods) }
        if set.contains("xl/workbook.bin") {
            return .other("an Excel binary workbook (.xlsb), not CSV: save it as .xlsx or CSV UTF-8")
        }
        if set.contains("[Content_Types].xml") {
            return .other("an Office document (Word or PowerPoint), not CSV")
        }
        return nil
    }
}
