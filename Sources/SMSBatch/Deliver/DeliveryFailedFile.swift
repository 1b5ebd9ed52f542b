import Foundation

/// `delivery-failed.csv` (SPEC §11): the rows whose delivery failed, in the input's own
/// columns with the row's own cells, then `dlr_status,dlr_at,source_row` — ready to fix and
/// drop again (smsbatch ignores columns it does not know). The input is read again from
/// where the job's file is now; when it is gone or its content changed (its SHA-256 differs
/// from the job's), the file is built from the batch files' columns instead
/// (`recipient,sender,product,message,schedule_at`).
enum DeliveryFailedFile {
    static let name = "delivery-failed.csv"

    /// The batch-file cells a fallback row is built from, by row.
    typealias BatchCells = [Int: (recipient: [UInt8], sender: [UInt8], product: [UInt8], message: [UInt8]?, scheduled: [UInt8])]

    /// Writes the file when some row failed delivery. Returns where its columns came from.
    @discardableResult
    static func write(job: JobRecord, failed: [Int: RowDelivery], fallback: BatchCells, config: PipelineConfig, dir: String) throws -> String? {
        guard !failed.isEmpty else { return nil }
        let path = (dir as NSString).appendingPathComponent(name)
        if try fromInput(job: job, failed: failed, config: config, path: path) { return "input" }
        var file = try OutputFile(path: path)
        if config.output.bom { file.plain([0xEF, 0xBB, 0xBF]) }
        file.plain("recipient,sender,product,message,schedule_at,dlr_status,dlr_at,source_row\n")
        for row in failed.keys.sorted() {
            guard let c = fallback[row], let d = failed[row] else { continue }
            for cell in [c.recipient, c.sender, c.product, c.message ?? [], c.scheduled] {
                cell.withUnsafeBufferPointer { file.field($0) }
                file.comma()
            }
            try finish(&file, d, row)
        }
        try file.commit()
        return "batch files"
    }

    private static func finish(_ file: inout OutputFile, _ d: RowDelivery, _ row: Int) throws(ReportError) {
        file.field(d.status)
        file.comma()
        if let at = d.at { file.field(UTCTime.iso(at)) }
        file.comma()
        file.number(row)
        try file.endRow()
    }

    /// Copies the failed rows out of the input; false (nothing written) when the input is
    /// not there or is not the job's content any more.
    private static func fromInput(job: JobRecord, failed: [Int: RowDelivery], config: PipelineConfig, path: String) throws -> Bool {
        let input: InputFile
        do { input = try InputFile(path: job.fileNow ?? job.input, hashing: true) } catch { return false }
        var file = try OutputFile(path: path)
        if config.output.bom { file.plain([0xEF, 0xBB, 0xBF]) }
        var sawHeader = false
        var failure: ReportError?
        var spare = BlockBox()
        let source = CSVSource(file: input, input: config.input, maxExpandedBytes: config.input.maxExpandedBytes)
        var broken = false
        _ = source.run(firstBox: BlockBox(), nextBox: { spare }) { event in
            switch event {
            case .block(let box):
                let block = box.pointer
                for r in block.pointee.records {
                    if r.isHeader {
                        guard !sawHeader else { continue }
                        sawHeader = true
                        for i in 0..<r.fieldCount {
                            file.field(block.pointee.field(r, i))
                            file.comma()
                        }
                        file.plain("dlr_status,dlr_at,source_row\n")
                        continue
                    }
                    guard let d = failed[r.row] else { continue }
                    for i in 0..<r.fieldCount {
                        file.field(block.pointee.field(r, i))
                        file.comma()
                    }
                    do throws(ReportError) { try finish(&file, d, r.row) } catch { failure = error }
                }
                spare = box
            case .warning: break
            case .reject: broken = true
            }
            return failure == nil && !broken
        }
        if let failure { throw failure }
        guard !broken, sawHeader, input.finishDigest() == job.sha256 else {
            file.discard()
            return false
        }
        try file.commit()
        return true
    }
}
