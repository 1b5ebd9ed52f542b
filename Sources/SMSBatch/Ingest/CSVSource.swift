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
        do {
            entries: while let entry = try archive.nextEntry() {
                guard entry.isRegularFile, isCSV(entry, emit: { pause(); defer { resume() }; return emit($0) }) else { continue }
                result.csvEntries += 1
                var first = true
                while var block = try archive.nextBlock() {
                    // Past the bound, only the bytes up to it are parsed: the complete rows
                    // before the limit are counted, as for a damaged file.
                    let over = archive.expandedBytes - maxExpandedBytes
                    if over > 0 { block = UnsafeRawBufferPointer(rebasing: block[0..<max(0, block.count - Int(over))]) }
                    var data = block
                    if data.isEmpty && over <= 0 { continue }
                    if first && !data.isEmpty {
                        first = false
                        data = stripBOM(data)
                        if data.count >= 2 && ((data[0] == 0xFF && data[1] == 0xFE) || (data[0] == 0xFE && data[1] == 0xFF)) {
                            pause()
                            _ = emit(.reject(.unreadable, "\(entry.name) is UTF-16 text; save it as UTF-8 CSV"))
                            return result
                        }
                        switch input.delimiter {
                        case .auto: reader.begin(delimiter: detectDelimiter(data))
                        case .fixed(let d): reader.begin(delimiter: d)
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
                _ = emit(.reject(.unreadable, "corrupt or truncated input: \((error as? ArchiveError)?.message ?? "\(error)")"))
                return result
            }
        }
        pause()
        return result
    }

    /// SPEC §4: a raw stream is always the CSV; archive entries must end in .csv or .tsv;
    /// others are skipped with a warning, `__MACOSX/` and dot-files silently.
    private func isCSV(_ e: ArchiveStream.Entry, emit: (Event) -> Bool) -> Bool {
        if e.isRaw { return true }
        let base = (e.name as NSString).lastPathComponent
        if e.name.hasPrefix("__MACOSX/") || base.hasPrefix(".") { return false }
        let lower = base.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") { return true }
        _ = emit(.warning("skipped archive entry '\(e.name)': not a .csv or .tsv file"))
        return false
    }
}

/// Checks on the end of a zip or tar that a streaming read cannot make.
enum ArchiveCheck {
    static func endDamage(_ archive: ArchiveStream, _ file: InputFile) -> String? {
        switch archive.container {
        case .zip:
            // The end-of-central-directory record: "PK\u{5}\u{6}", within the last 64 KiB + 22 bytes.
            let tail = file.tail(65_557)
            guard tail.count >= 22, let at = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
                tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06
            }) else { return "truncated zip: no end of central directory" }
            let total = Int(tail[at + 10]) | Int(tail[at + 11]) << 8
            // 0xFFFF: a zip64 count kept elsewhere; then trust the entries read.
            if total != 0xFFFF && total != archive.entryCount {
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
