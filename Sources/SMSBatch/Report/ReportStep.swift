/// The report stage over one block (SPEC §7): counts every row and writes it to exactly one
/// place — rejects.csv, duplicates.csv, or its batch (a batch file in a dry run, the send
/// queue otherwise). Files are written under temporary names and published or discarded
/// whole by `finish`.
struct ReportStep: ~Copyable {
    private let outputs: JobOutputs
    private let products: [ProductEntry]
    private let defaultSender: [UInt8]
    private var rejects: OutputFile?
    private var duplicates: OutputFile?
    /// Rows to send, when this is not a dry run (the send stage reads it back).
    private var queue: SendQueueWriter?
    private var batchFile: OutputFile?
    private var batchNumber = 0
    private var closedBatches: [ClosedOutputFile] = []
    private var rejectsHeaded = false
    /// The last time written and its ISO bytes: rows of a batch mostly share one.
    private var timeText: (time: Int64, bytes: [UInt8])?
    /// For an archive entry whose header differs from the first: for each column of
    /// rejects.csv, the column of this entry that holds it (-1: none). nil = same header.
    var rejectColumns: [Int]?
    private(set) var optedOut = 0

    init(outputs: JobOutputs, products: [ProductEntry], defaultSender: [UInt8], sending: Bool) throws(ReportError) {
        self.outputs = outputs
        self.products = products
        self.defaultSender = defaultSender
        rejects = nil
        duplicates = nil
        queue = nil
        rejects = try outputs.csv("rejects.csv", header: "")
        duplicates = try outputs.csv("duplicates.csv", header: outputs.duplicatesHeader)
        if sending { queue = try SendQueueWriter(path: outputs.path(JobOutputs.queueName)) }
    }

    /// rejects.csv's columns: `row,reason,detail`, then the first entry's header.
    mutating func headRejects(_ names: [[UInt8]]) {
        rejects!.plain("row,reason,detail")
        for n in names {
            rejects!.comma()
            n.withUnsafeBufferPointer { rejects!.field($0) }
        }
        rejects!.plain("\n")
        rejectsHeaded = true
    }

    mutating func run(_ records: ArraySlice<RecordInfo>, _ outcomes: [RowOutcome], dedupe: borrowing DedupeStep,
                      split: borrowing SplitStep, _ block: borrowing RecordBlock, into summary: inout JobSummary) throws(ReportError) {
        for (k, r) in records.enumerated() {
            summary.rows += 1
            switch outcomes[k] {
            case .rejected(let reason, let detail):
                summary.invalid += 1
                summary.invalidByReason[reason, default: 0] += 1
                if reason == .optedOut { optedOut += 1 }
                try writeReject(r, reason, detail, block)
            case .valid(let v):
                summary.valid += 1
                let first = dedupe.firstRowOf[k]
                if first != 0 {
                    summary.duplicates += 1
                    summary.duplicatesByReason[first > 0 ? "in_file" : "repeat_within_window", default: 0] += 1
                    try writeDuplicate(r.row, firstRow: first, v, block)
                } else {
                    let parts = v.encoding == nil ? 0 : Int(v.segments)
                    if parts >= summary.partsCount.count { summary.partsCount += [Int](repeating: 0, count: parts + 1 - summary.partsCount.count) }
                    summary.partsCount[parts] += 1
                    summary.encodingCount[v.encoding.map { $0 == .gsm7 ? 0 : 1 } ?? 2] += 1
                    try writeBatchRow(r.row, batch: split.batchOf[k], time: split.timeOf[k], v, dedupe.digests[k], block)
                }
            }
        }
    }

    private mutating func writeReject(_ r: RecordInfo, _ reason: ReasonCode, _ detail: String, _ block: borrowing RecordBlock) throws(ReportError) {
        rejects!.number(r.row)
        rejects!.comma()
        rejects!.field(reason.code)
        rejects!.comma()
        rejects!.field(detail)
        if let map = rejectColumns {
            // Another entry's header: its fields under the first entry's columns.
            for i in map {
                rejects!.comma()
                if i >= 0 && i < r.fieldCount { rejects!.field(block.field(r, i)) }
            }
        } else {
            for i in 0..<r.fieldCount {
                rejects!.comma()
                rejects!.field(block.field(r, i))
            }
        }
        try rejects!.endRow()
    }

    private mutating func writeDuplicate(_ row: Int, firstRow: Int, _ v: ValidRow, _ block: borrowing RecordBlock) throws(ReportError) {
        duplicates!.number(row)
        duplicates!.comma()
        if firstRow > 0 {
            duplicates!.number(firstRow)
            duplicates!.plain(",in_file,")
        } else {
            duplicates!.plain(",repeat_within_window,")
        }
        duplicates!.phone(v.recipient)
        duplicates!.comma()
        withSender(v, block, defaultSender) { duplicates!.field($0) }
        if outputs.format.includeMessage {
            duplicates!.comma()
            duplicates!.field(block.bytes.slice(v.messageStart, v.messageEnd))
        }
        try duplicates!.endRow()
    }

    private mutating func writeBatchRow(_ row: Int, batch: Int, time: Int64?, _ v: ValidRow, _ digest: MessageDigest,
                                        _ block: borrowing RecordBlock) throws(ReportError) {
        let product = products[Int(v.product)]
        if queue != nil {
            try withSender(v, block, defaultSender) { sender throws(ReportError) in
                try queue!.append(
                    row: row, batch: batch, product: product.codeBytes, encoding: v.encoding, segments: v.segments,
                    recipient: v.recipient, scheduledAt: time ?? 0, digest: digest, sender: sender,
                    message: block.bytes.slice(v.messageStart, v.messageEnd),
                    templateId: block.bytes.slice(v.templateStart, v.templateEnd),
                    entityId: block.bytes.slice(v.entityStart, v.entityEnd))
            }
            return
        }
        if batch != batchNumber {
            if let f = batchFile.take() { closedBatches.append(try f.close()) }
            batchNumber = batch
            batchFile = try outputs.csv(JobOutputs.batchName(batch), header: outputs.batchHeader)
        }
        if let time, timeText?.time != time { timeText = (time, UTCTime.isoBytes(time)) }
        let scheduled = time == nil ? [] : timeText!.bytes
        withSender(v, block, defaultSender) { sender in
            product.codeBytes.withUnsafeBufferPointer { code in
                scheduled.withUnsafeBufferPointer { when in
                    BatchRow.write(&batchFile!, row: row, recipient: v.recipient, sender: sender, product: code, result: nil,
                                   segments: Int(v.segments), encoding: v.encoding, scheduled: when,
                                   message: outputs.format.includeMessage ? block.bytes.slice(v.messageStart, v.messageEnd) : nil)
                }
            }
        }
        try batchFile!.endRow()
    }

    /// Publishes everything, or, for a file rejected as a whole, keeps only rejects.csv and
    /// duplicates.csv (SPEC §5: no batch file holds a row).
    mutating func finish(rejected: Bool) throws(ReportError) {
        if let f = batchFile.take() { closedBatches.append(try f.close()) }
        if rejected {
            queue.take()?.discard()
            for b in closedBatches { b.remove() }
        } else {
            for b in closedBatches { try b.publish() }
            try queue.take()?.commit()
        }
        if !rejectsHeaded { rejects!.plain("row,reason,detail\n") }
        try rejects.take()!.commit()
        try duplicates.take()!.commit()
    }
}
