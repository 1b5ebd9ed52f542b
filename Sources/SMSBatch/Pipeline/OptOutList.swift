/// Loads `validate.optout_list`: one number per line, or a CSV whose recipient column holds
/// them (SPEC §5); numbers normalised like recipients. Read through the same libarchive and
/// libcsv path as recipient files, so a gzipped list works too.
enum OptOutList {
    struct LoadError: Diagnosable {
        let path: String
        let reason: String
        /// Exit 66 when the file cannot be read, 78 when it breaks a configured limit.
        let isConfigError: Bool
        var subject: String { path }
        var problem: String { reason }
        var exitStatus: ExitStatus { isConfigError ? .config : .noInput }
    }

    static func load(path: String, config: PipelineConfig) throws(LoadError) -> Set<UInt64> {
        let file: InputFile
        do { file = try InputFile(path: path) } catch {
            throw LoadError(path: path, reason: "validate.optout_list: \(error.reason)", isConfigError: false)
        }
        if file.size > config.input.maxListBytes {
            throw LoadError(path: path, reason: "validate.optout_list is \(file.size) bytes, over input.max_list_bytes (\(config.input.maxListBytes))", isConfigError: true)
        }
        let home = HomeCountry(iso: config.validate.homeCountry) ?? HomeCountry(iso: "IN")!
        var numbers = Set<UInt64>()
        if file.size == 0 { return numbers }
        var column: Int? = nil
        var sawHeader = false
        var failure: String?
        var spare = BlockBox()
        let source = CSVSource(file: file, input: config.input, maxExpandedBytes: config.input.maxListBytes)
        _ = source.run(firstBox: BlockBox(), nextBox: { spare }) { event in
            switch event {
            case .block(let box):
                let block = box.pointer
                for r in block.pointee.records {
                    if r.isHeader && !sawHeader {
                        sawHeader = true
                        let names = (0..<r.fieldCount).map { Array(block.pointee.field(r, $0)) }
                        column = ColumnMap(header: names, input: config.input)[.recipient]
                        if column != nil { continue }
                    }
                    let i = column ?? 0
                    guard i < r.fieldCount else { continue }
                    let cell = trimSpacesAndTabs(block.pointee.field(r, i))
                    if let n = RecipientNormalizer.normalizePasted(cell, home: home) { numbers.insert(n.value) }
                }
                spare = box
            case .warning: break
            case .reject(let reason, let detail): failure = reason == .expandedTooLarge ? "expands past input.max_list_bytes" : detail
            }
            return failure == nil
        }
        if let failure {
            throw LoadError(path: path, reason: "validate.optout_list: \(failure)", isConfigError: failure.hasPrefix("expands"))
        }
        return numbers
    }
}

/// Drops a UTF-8 byte order mark.
func stripBOM(_ d: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    if d.count >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF { return UnsafeRawBufferPointer(rebasing: d[3...]) }
    return d
}
