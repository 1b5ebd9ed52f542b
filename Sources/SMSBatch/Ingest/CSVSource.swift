import Foundation

/// Walks the CSV entries of an input (SPEC §4) and parses them into record blocks: entry
/// selection, BOM and UTF-16 checks, delimiter detection, the bound on decompressed bytes.
/// Whoever runs it decides where blocks go: the job's stages on another thread, or the
/// opt-out list loader inline.
final class CSVSource: @unchecked Sendable {
    // @unchecked: run by one thread; its file, archive and parser never leave that thread.
    enum Event: Sendable {
        case block(BlockBox)
        case warning(String)
        /// The input cannot be read on; the blocks sent before hold the rows read so far.
        case reject(FileRejectReason, String)
    }

    struct Result: Sendable {
        var csvEntries = 0
        /// Time spent reading, decompressing and parsing (the ingest stage).
        var busyNanos: UInt64 = 0
    }

    private let file: InputFile
    private let input: InputConfig
    private let maxExpandedBytes: Int64
    private let blockRecords: Int

    init(file: InputFile, input: InputConfig, maxExpandedBytes: Int64, blockRecords: Int = 2048) {
        self.file = file
        self.input = input
        self.maxExpandedBytes = maxExpandedBytes
        self.blockRecords = blockRecords
    }

    /// Parses the whole input. `nextBox` supplies an empty block to parse into next (it may
    /// wait for one); `emit` receives each event and returns false to stop early.
    func run(firstBox: BlockBox, nextBox: () -> BlockBox, emit: (Event) -> Bool) -> Result {
        var result = Result()
        var utf8 = ByteBuffer(capacity: 1 << 16)
        let archive = ArchiveStream(input: file)
        let reader = CSVReader(block: firstBox)
        var t = DispatchTime.now().uptimeNanoseconds
        func pause() { result.busyNanos += DispatchTime.now().uptimeNanoseconds - t }
        func resume() { t = DispatchTime.now().uptimeNanoseconds }
        /// Hands over the complete records; false when the receiver wants no more.
        func handOver() -> Bool {
            pause()
            defer { resume() }
            guard reader.recordCount > 0 else { return true }
            let full = reader.exchange(nextBox())
            return emit(.block(full))
        }
        // A workbook is a zip: its directory says so before any entry is read. One named as
        // text was saved under the wrong name, and may not be the file that was meant.
        if let names = ZipDirectory.names(file), let document = ZipDirectory.document(names) {
            if case .workbook(let kind) = document, !Self.namedAsText(file.path) {
                return runWorkbook(kind, firstBox: firstBox, nextBox: nextBox, emit: emit, result: result, started: t)
            }
            pause()
            let what = document.description
            let advice = if case .workbook = document {
                ", saved under a text file's name: export the sheet as CSV UTF-8, or drop the \(document == .workbook(.xlsx) ? ".xlsx" : ".ods") itself"
            } else { "" }
            _ = emit(.reject(.unreadable, "the file is \(what)\(advice)"))
            return result
        }
        do {
            entries: while let entry = try archive.nextEntry() {
                guard entry.isRegularFile, isCSV(entry, in: archive, emit: { pause(); defer { resume() }; return emit($0) }) else { continue }
                result.csvEntries += 1
                var first = true
                // Another encoding than UTF-8: each block becomes UTF-8 in `utf8` first.
                var transcoder: Transcoder?
                while var block = try archive.nextBlock() {
                    // Past the bound, only the bytes up to it are parsed: the complete rows
                    // before the limit are counted, as for a damaged file.
                    let over = archive.expandedBytes - maxExpandedBytes
                    if over > 0 { block = UnsafeRawBufferPointer(rebasing: block[0..<max(0, block.count - Int(over))]) }
                    var data = block
                    if data.isEmpty && over <= 0 { continue }
                    if first && !data.isEmpty, let (t, bom) = Transcoder.detect(data, encoding: input.encoding) {
                        transcoder = t
                        data = UnsafeRawBufferPointer(rebasing: data[bom...])
                    }
                    if transcoder != nil {
                        utf8.removeAll()
                        transcoder!.transcode(data, into: &utf8)
                        data = UnsafeRawBufferPointer(start: utf8.base, count: utf8.count)
                    }
                    if first && !data.isEmpty {
                        first = false
                        data = stripBOM(data)
                        if let what = Self.notCSV(data) {
                            pause()
                            _ = emit(.reject(.unreadable, "\(entry.isRaw ? "the file" : entry.name) is \(what)"))
                            return result
                        }
                        // Excel's `sep=;` first line names the delimiter and takes row 1.
                        let sep = Self.separatorLine(data)
                        if let sep { data = UnsafeRawBufferPointer(rebasing: data[sep.length...]) }
                        switch input.delimiter {
                        case .auto: reader.begin(delimiter: sep?.delimiter ?? detectDelimiter(data), skippedRows: sep == nil ? 0 : 1)
                        case .fixed(let d): reader.begin(delimiter: d, skippedRows: sep == nil ? 0 : 1)
                        }
                    }
                    reader.feed(data)
                    if over > 0 {
                        if handOver() {
                            pause()
                            _ = emit(.reject(.expandedTooLarge, "expands past input.max_expanded_bytes (\(maxExpandedBytes))"))
                        }
                        return result
                    }
                    if reader.recordCount >= blockRecords || reader.bufferedBytes >= 1 << 23 {
                        if !handOver() { break entries }
                    }
                }
                if transcoder != nil {
                    utf8.removeAll()
                    transcoder!.finish(into: &utf8)
                    reader.feed(UnsafeRawBufferPointer(start: utf8.base, count: utf8.count))
                }
                reader.finish()
                if !handOver() { break }
            }
            // A streaming read of a zip or tar stops happily where the file stops: check
            // that its end is there too, or a cut-off archive would pass for a whole one.
            if let damage = ArchiveCheck.endDamage(archive, file) {
                pause()
                _ = emit(.reject(.unreadable, "corrupt or truncated input: \(damage)"))
                return result
            }
        } catch {
            // The complete rows before the damage are counted; nothing of the file is sent.
            if handOver() {
                pause()
                _ = emit(.reject(.unreadable, "corrupt or truncated input: \(error.message)"))
                return result
            }
        }
        pause()
        return result
    }

    /// A name that says CSV or text (.csv, .tsv, .txt).
    static func namedAsText(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") || lower.hasSuffix(".txt")
    }

    /// Reads a workbook's sheet into record blocks, as `run` does a CSV stream.
    private func runWorkbook(_ kind: WorkbookSource.Kind, firstBox: BlockBox, nextBox: () -> BlockBox,
                             emit: (Event) -> Bool, result: Result, started: UInt64) -> Result {
        var result = result
        var t = started
        let rows = SheetRows(block: firstBox)
        func handOver() -> Bool {
            result.busyNanos += DispatchTime.now().uptimeNanoseconds - t
            defer { t = DispatchTime.now().uptimeNanoseconds }
            guard rows.recordCount > 0 else { return true }
            return emit(.block(rows.exchange(nextBox())))
        }
        let source = WorkbookSource(file: file, kind: kind, sheet: input.sheet, maxExpandedBytes: maxExpandedBytes)
        var stopped = false
        do {
            try source.read(into: rows) {
                if rows.recordCount >= blockRecords || rows.bufferedBytes >= 1 << 23 { stopped = !handOver() }
                return !stopped
            }
            result.csvEntries = 1
            if !stopped { _ = handOver() }
        } catch {
            // The complete rows before the damage are counted; nothing of the file is sent.
            if handOver() {
                switch error {
                case .expandedTooLarge: _ = emit(.reject(.expandedTooLarge, "expands past input.max_expanded_bytes (\(maxExpandedBytes))"))
                case .unreadable(let message): _ = emit(.reject(.unreadable, message))
                }
            }
            return result
        }
        result.busyNanos += DispatchTime.now().uptimeNanoseconds - t
        return result
    }

    /// What the start of an entry shows it is when it is plainly not CSV text: a legacy
    /// Excel workbook, an HTML page. nil for anything else (CSV or not, the rows decide).
    static func notCSV(_ start: UnsafeRawBufferPointer) -> String? {
        let ole2: [UInt8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]
        if start.starts(with: ole2) {
            return "a legacy Excel workbook (.xls) or another old Office file, not CSV: save it as .xlsx or CSV UTF-8"
        }
        var i = 0
        while i < start.count, [0x20, 0x09, 0x0D, 0x0A].contains(start[i]) { i += 1 }
        let head = String(decoding: start[i..<min(start.count, i + 64)], as: UTF8.self).lowercased()
        if head.hasPrefix("<!doctype html") || head.hasPrefix("<html") || (head.hasPrefix("<?xml") && head.contains("html")) {
            return "an HTML page (a web page or a report saved as .csv), not CSV: open it and export CSV UTF-8"
        }
        return nil
    }

    /// Excel's first line `sep=X` (also quoted): the delimiter X and the line's length, line
    /// end included. nil when the entry does not start with one.
    static func separatorLine(_ start: UnsafeRawBufferPointer) -> (delimiter: UInt8, length: Int)? {
        var i = 0
        let quoted = start.first == 0x22
        if quoted { i = 1 }
        guard start.count >= i + 5 else { return nil }
        let word = start[i..<(i + 4)].map { $0 | 0x20 }
        guard word == Array("sep=".utf8) else { return nil }
        let delimiter = start[i + 4]
        guard delimiter != 0x0A && delimiter != 0x0D && delimiter != 0x22 else { return nil }
        i += 5
        if quoted { guard i < start.count, start[i] == 0x22 else { return nil }; i += 1 }
        if i < start.count && start[i] == 0x0D { i += 1 }
        if i < start.count && start[i] == 0x0A { i += 1 } else if i < start.count { return nil }
        return (delimiter, i)
    }

    /// SPEC §4: a raw stream is always the CSV; archive entries must end in .csv or .tsv;
    /// others are skipped with a warning, `__MACOSX/` and dot-files silently.
    /// A zip's only entry without an extension is the campaign too (pandas'
    /// `to_csv('x.zip')` writes one entry named `x`); whether it is text, its rows decide.
    private func isCSV(_ e: ArchiveStream.Entry, in archive: ArchiveStream, emit: (Event) -> Bool) -> Bool {
        if e.isRaw { return true }
        let base = (e.name as NSString).lastPathComponent
        if e.name.hasPrefix("__MACOSX/") || base.hasPrefix(".") { return false }
        let lower = base.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") { return true }
        if !base.contains("."), archive.container == .zip, ZipDirectory.end(file)?.entries == 1 { return true }
        _ = emit(.warning("skipped archive entry '\(e.name)': not a .csv or .tsv file"))
        return false
    }
}

/// Checks on the end of a zip or tar that a streaming read cannot make.
enum ArchiveCheck {
    static func endDamage(_ archive: ArchiveStream, _ file: InputFile) -> String? {
        switch archive.container {
        case .zip:
            guard let end = ZipDirectory.end(file) else { return "truncated zip: no end of central directory" }
            // nil: a zip64 count kept elsewhere; then trust the entries read.
            if let total = end.entries, total != archive.entryCount {
                return "zip central directory lists \(total) entries, the file holds \(archive.entryCount)"
            }
            return nil
        case .plainTar:
            // A tar ends with two zero blocks (1,024 zero bytes, usually more padding).
            let tail = file.tail(1024)
            return tail.count == 1024 && tail.allSatisfy({ $0 == 0 }) ? nil : "truncated tar: no end-of-archive blocks"
        case .other:
            return nil
        }
    }
}
