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
                while let block = try archive.nextBlock() {
                    if archive.expandedBytes > maxExpandedBytes {
                        pause()
                        _ = emit(.reject(.expandedTooLarge, "expands past input.max_expanded_bytes (\(maxExpandedBytes))"))
                        return result
                    }
                    var data = block
                    if data.isEmpty { continue }
                    if first {
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
                    if reader.recordCount >= blockRecords || reader.bufferedBytes >= 1 << 23 {
                        if !handOver() { break entries }
                    }
                }
                reader.finish()
                if !handOver() { break }
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
