import Foundation

/// One job's pipeline, stage by stage, over blocks of records.
struct JobState: ~Copyable {
    let config: PipelineConfig
    let options: RunOptions
    let now: Int64
    let path: String
    let outputs: JobOutputs
    let progress: ProgressReporter
    let products: [ProductEntry]
    private let optOut: Set<UInt64>
    private let defaultSender: [UInt8]

    var summary = JobSummary()
    private var validator: RowValidator?
    /// The first entry's header, for the columns of rejects.csv.
    private var firstHeader: [[UInt8]]?
    private var firstColumns = ColumnMap()
    /// For an archive entry whose header differs from the first: for each column of
    /// rejects.csv, the column of this entry that holds it (-1: none). nil = same header.
    private var rejectColumns: [Int]?
    private var dedupe = DedupeIndex()
    private var planner: BatchPlanner
    private var rejects: OutputFile?
    private var duplicates: OutputFile?
    private var batchFile: OutputFile?
    /// Rows to send, when this is not a dry run (the send stage reads it back).
    private var queue: SendQueueWriter?
    private var batchNumber = 0
    private var closedBatches: [ClosedOutputFile] = []
    private var stopped = false
    private var optedOut = 0
    private var nanos = [UInt64](repeating: 0, count: 6)
    private var bytesRead: () -> Int64 = { 0 }

    // Per-block scratch, reused.
    private var outcomes: [RowOutcome] = []
    /// Per record: 0 = kept, -1 = sent by an earlier job within dedupe.window, else the
    /// row this one repeats.
    private var firstRowOf: [Int] = []
    private var digests: [MessageDigest] = []
    /// Messages earlier jobs sent within `dedupe.window` (SPEC §6 `repeat_within_window`).
    var recentlySent: Set<MessageDigest> = []
    private var batchOf: [Int] = []
    /// The current batch's time (nil: at once) and its ISO text for batch files.
    private var batchTime: Int64?
    /// Rows of the current batch by product and time: the sender puts each such group in
    /// requests of its own, so these give the real number of requests.
    private var requestGroups: [RequestGroupKey: Int] = [:]
    /// Per batch (index = number - 1): requests needed, groups, promotional rows deferred.
    private var batchRequests: [Int] = []
    private var batchGroups: [Int] = []
    private var batchDeferred: [Int] = []
    /// Promotional rows moved to a promo-window opening, by their new time.
    private var deferredTo: [Int64: Int] = [:]

    private struct RequestGroupKey: Hashable {
        let product: UInt8
        let time: Int64
    }

    private enum Stage: Int { case ingest, validate, dedupe, split, send, report }

    init(config: PipelineConfig, options: RunOptions, optOut: Set<UInt64>, now: Int64, outputs: JobOutputs, path: String, progress: ProgressReporter) {
        self.config = config
        self.options = options
        self.optOut = optOut
        self.now = now
        self.outputs = outputs
        self.path = path
        self.progress = progress
        products = RowValidator.productTable(config.validate)
        defaultSender = Array((config.validate.defaultSender ?? "").utf8)
        planner = BatchPlanner(config: config, kind: options.kind ?? config.caps.kind, now: now)
    }

    private var rejected: Bool { summary.rejectReason != nil }

    /// The first pass over a file: ingest, validate, dedupe, split and the rejects,
    /// duplicates and (dry run) batch files, or the send queue. Returns the job's summary
    /// with its plan.
    static func firstPass(path: String, ticket: JobTicket, config: PipelineConfig, options: RunOptions, optOut: Set<UInt64>,
                          outputs: JobOutputs, progress: ProgressReporter) throws(RunError) -> JobSummary {
        let file: InputFile
        do { file = try InputFile(path: path, hashing: ticket.sha == nil) } catch { throw .input(error) }
        var job = JobState(config: config, options: options, optOut: optOut, now: ticket.clock, outputs: outputs, path: path, progress: progress)
        job.summary.input = path
        job.summary.bytes = file.size
        job.summary.startedAt = ticket.clock
        job.summary.dryRun = options.dryRun
        job.summary.kind = options.kind ?? config.caps.kind
        // --force sends the content again: the window would only turn it into duplicates.
        if let ledger = ticket.ledger, let id = ticket.id, config.dedupe.window > 0, !options.force {
            do {
                try ledger.prune(sentBefore: ticket.clock - Int64(config.dedupe.window))
                job.recentlySent = Set(try ledger.sentSince(ticket.clock - Int64(config.dedupe.window), excludingJob: id)
                    .map { MessageDigest(high: $0.hi, low: $0.lo) })
            } catch { throw .ledger(error) }
        }
        progress.reading(path, bytes: file.size)
        do throws(ReportError) {
            if file.size == 0 {
                job.rejectFile(.noRows, "the file is empty")
            } else if file.size > config.input.maxFileBytes {
                job.rejectFile(.fileTooLarge, "\(file.size) bytes, over input.max_file_bytes (\(config.input.maxFileBytes))")
            } else {
                try job.ingest(file)
                // A new job with a file still being written sends nothing (a resumed one is
                // stopped by the send stage: its earlier requests stand).
                if !ticket.resumed, let change = ticket.snapshot?.change(path: path) { job.rejectFile(.unreadable, change) }
            }
            let sha = ticket.sha ?? file.finishDigest()
            job.summary.sha256 = sha
            job.summary.job = ticket.id ?? Admission.jobID(clock: ticket.clock, sha: sha)
            try job.finish()
        } catch {
            outputs.abandon()
            throw .report(error)
        }
        return job.summary
    }

    mutating func rejectFile(_ reason: FileRejectReason, _ detail: String) {
        guard !rejected else { return }
        summary.status = .rejected
        summary.rejectReason = reason
        summary.rejectDetail = detail
        stopped = true
        progress.error(path, "file rejected: \(reason.rawValue): \(detail)")
    }

    // MARK: - Ingest

    /// Streams every CSV entry of the input through libcsv (on a thread of its own) and the
    /// stages (on this one), a block of records at a time.
    mutating func ingest(_ file: InputFile) throws(ReportError) {
        try openSideFiles()
        bytesRead = { [unowned file] in file.bytesRead }
        let channel = BlockChannel()
        let source = CSVSource(file: file, input: config.input, maxExpandedBytes: config.input.maxExpandedBytes)
        let parser = Thread {
            let result = source.run(firstBox: channel.takeFree(), nextBox: channel.takeFree, emit: channel.push)
            channel.finish(result)
        }
        parser.stackSize = 4 << 20
        parser.start()
        var failure: ReportError?
        while let event = channel.next() {
            switch event {
            case .block(let box):
                if !stopped && failure == nil {
                    do { try process(box.pointer.pointee) } catch { failure = error }
                    progress.read(rows: summary.rows, bytesRead: bytesRead())
                }
                channel.giveBack(box)
                if stopped || failure != nil { channel.stop() }
            case .warning(let warning):
                summary.warnings.append(warning)
                progress.warning(path, warning)
            case .reject(let reason, let detail):
                rejectFile(reason, detail)
            }
        }
        let result = channel.finished()
        nanos[Stage.ingest.rawValue] += result.busyNanos
        if let failure { throw failure }
        if result.csvEntries == 0 && !rejected {
            rejectFile(.unreadable, "the archive holds no .csv or .tsv entry")
        }
    }

    private mutating func account(_ stage: Stage, since t: inout UInt64) {
        let n = DispatchTime.now().uptimeNanoseconds
        nanos[stage.rawValue] += n - t
        t = n
    }

    // MARK: - Stages over one block

    private mutating func process(_ block: borrowing RecordBlock) throws(ReportError) {
        var t = DispatchTime.now().uptimeNanoseconds
        outcomes.removeAll(keepingCapacity: true)
        var firstDataRecord = 0
        for (i, r) in block.records.enumerated() {
            if r.isHeader {
                takeHeader(r, block)
                firstDataRecord = i + 1
                if stopped { return }
                continue
            }
            guard let validator else { return }
            let outcome = validator.validate(r, in: block)
            outcomes.append(outcome)
        }
        let records = block.records[firstDataRecord...]
        account(.validate, since: &t)

        // Dedupe: first occurrence of (sender, recipient, message) kept.
        firstRowOf.removeAll(keepingCapacity: true)
        digests.removeAll(keepingCapacity: true)
        for (k, r) in records.enumerated() {
            guard case .valid(let v) = outcomes[k] else { firstRowOf.append(0); digests.append(MessageDigest(high: 0, low: 0)); continue }
            let digest = withSender(v, block, defaultSender) { s in
                MessageDigest(sender: s, recipient: v.recipient.value, message: block.bytes.slice(v.messageStart, v.messageEnd))
            }
            digests.append(digest)
            let first = dedupe.insert(digest, row: r.row) ?? 0
            firstRowOf.append(first == 0 && !recentlySent.isEmpty && recentlySent.contains(digest) ? -1 : first)
        }
        account(.dedupe, since: &t)

        // Split: parts by caps, batches by batch_size, in file order.
        batchOf.removeAll(keepingCapacity: true)
        for k in 0..<outcomes.count {
            guard case .valid(let v) = outcomes[k], firstRowOf[k] == 0 else { batchOf.append(0); continue }
            batchOf.append(planner.place(products[Int(v.product)].rule.channel))
        }
        account(.split, since: &t)

        // Report: every row goes to exactly one of a batch, rejects.csv, duplicates.csv.
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
                if firstRowOf[k] != 0 {
                    summary.duplicates += 1
                    let reason = firstRowOf[k] > 0 ? "in_file" : "repeat_within_window"
                    summary.duplicatesByReason[reason, default: 0] += 1
                    try writeDuplicate(r.row, firstRow: firstRowOf[k], v, block)
                } else {
                    try writeBatchRow(r.row, batch: batchOf[k], v, digests[k], block)
                }
            }
        }
        account(.report, since: &t)
    }


    private mutating func takeHeader(_ r: RecordInfo, _ block: borrowing RecordBlock) {
        let names = (0..<r.fieldCount).map { Array(block.field(r, $0)) }
        if r.malformed || names.contains(where: { n in n.withUnsafeBufferPointer { !isValidUTF8($0) || $0.contains(0) } }) {
            rejectFile(.unreadable, "row \(r.row): the header is not CSV text (binary data, bad quoting or not UTF-8)")
            return
        }
        let columns = ColumnMap(header: names, input: config.input)
        var missing: [String] = []
        if columns[.recipient] == nil { missing.append("recipient") }
        if columns[.message] == nil { missing.append("message") }
        if columns[.sender] == nil && config.validate.defaultSender == nil { missing.append("sender") }
        if !missing.isEmpty {
            let found = names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", ")
            // Say which names would have matched, and where to add the file's own.
            let accepted = missing.map { role in
                "a \(role) column is named one of: "
                    + config.input.aliases(for: ColumnRole(rawValue: role)!).joined(separator: ", ")
                    + " (or add your header under input.columns.\(role)"
                    + (role == "sender" ? ", or set validate.default_sender)" : ")")
            }
            rejectFile(.missingColumn, "row \(r.row): no \(missing.joined(separator: ", ")) column (header: \(found)); "
                + accepted.joined(separator: "; "))
            return
        }
        for note in columns.ignored {
            summary.warnings.append(note)
            progress.warning(path, note)
        }
        if firstHeader == nil {
            firstHeader = names
            firstColumns = columns
            writeRejectsHeader(names)
            rejectColumns = nil
        } else if let first = firstHeader, first != names {
            rejectColumns = ColumnMap.placement(of: names, columns, under: first, firstColumns)
        } else {
            rejectColumns = nil
        }
        validator = RowValidator(columns: columns, config: config, productOverride: options.product, now: now, optOut: optOut)
    }

    // MARK: - Writing

    private mutating func openSideFiles() throws(ReportError) {
        rejects = try outputs.csv("rejects.csv", header: "")
        duplicates = try outputs.csv("duplicates.csv", header: outputs.duplicatesHeader)
        if !options.dryRun { queue = try SendQueueWriter(path: outputs.path(JobOutputs.queueName)) }
    }

    private mutating func writeRejectsHeader(_ names: [[UInt8]]) {
        rejects!.plain("row,reason,detail")
        for n in names {
            rejects!.comma()
            n.withUnsafeBufferPointer { rejects!.field($0) }
        }
        rejects!.plain("\n")
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

    private mutating func writeBatchRow(_ row: Int, batch: Int, _ v: ValidRow, _ digest: MessageDigest, _ block: borrowing RecordBlock) throws(ReportError) {
        if batch != batchNumber { try startBatch(batch) }
        let product = products[Int(v.product)]
        // The row's own time, else its batch's (nil: at once); a P time outside the promo
        // window moves to the next opening (SPEC §6).
        var time: Int64? = v.scheduleAt == 0 ? batchTime : v.scheduleAt
        if product.isPromotional {
            let base = time ?? now
            // Most P rows share their batch's time: one zone computation per batch, not per row.
            if promoCache?.base != base { promoCache = (base, deferredForPromo(base)) }
            let moved = promoCache!.moved
            if moved != base {
                time = moved
                deferredTo[moved, default: 0] += 1
                batchDeferred[batch - 1] += 1
            }
        }
        requestGroups[RequestGroupKey(product: v.product, time: time ?? 0), default: 0] += 1
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
        let scheduled: [UInt8] = time.map { $0 == batchTime ? batchTimeText : UTCTime.isoBytes($0) } ?? []
        withSender(v, block, defaultSender) { sender in
            product.codeBytes.withUnsafeBufferPointer { code in
                scheduled.withUnsafeBufferPointer { time in
                    BatchRow.write(&batchFile!, row: row, recipient: v.recipient, sender: sender, product: code, result: nil,
                                   segments: Int(v.segments), encoding: v.encoding, scheduled: time,
                                   message: outputs.format.includeMessage ? block.bytes.slice(v.messageStart, v.messageEnd) : nil)
                }
            }
        }
        try batchFile!.endRow()
    }

    private var batchTimeText: [UInt8] = []
    private var promoCache: (base: Int64, moved: Int64)?

    private mutating func startBatch(_ number: Int) throws(ReportError) {
        closeRequestGroups()
        if let f = batchFile.take() { closedBatches.append(try f.close()) }
        batchNumber = number
        batchTime = planner.time(ofBatch: number)
        batchTimeText = batchTime.map(UTCTime.isoBytes) ?? []
        while batchRequests.count < number { batchRequests.append(0); batchGroups.append(0); batchDeferred.append(0) }
        if queue != nil { return }
        batchFile = try outputs.csv(JobOutputs.batchName(number), header: outputs.batchHeader)
    }

    /// Turns the current batch's groups into its number of requests.
    private mutating func closeRequestGroups() {
        guard batchNumber > 0 else { return }
        let perRequest = max(1, config.send.nodesPerRequest)
        batchRequests[batchNumber - 1] = requestGroups.values.reduce(0) { $0 + ($1 + perRequest - 1) / perRequest }
        batchGroups[batchNumber - 1] = requestGroups.count
        requestGroups.removeAll(keepingCapacity: true)
    }

    /// SPEC §6: a P message outside the promo window moves to the next opening when
    /// `action: defer` (with `reject`, rows with their own time were rejected already).
    private func deferredForPromo(_ t: Int64) -> Int64 {
        let w = config.validate.promoWindow
        return w.action == .defer ? w.nextOpening(after: t) : t
    }

    // MARK: - Decision and publication

    /// Applies the file-level rules that need the whole file, then publishes or discards
    /// the batch files.
    mutating func finish() throws(ReportError) {
        var t = DispatchTime.now().uptimeNanoseconds
        if !rejected {
            let countable = summary.invalid - optedOut
            if summary.rows == 0 {
                rejectFile(.noRows, "no data rows after the header")
            } else if Double(countable) / Double(summary.rows) > config.validate.maxInvalidRatio {
                rejectFile(.tooManyInvalid, "\(countable) of \(summary.rows) rows invalid, over validate.max_invalid_ratio (\(config.validate.maxInvalidRatio))")
            } else if planner.overCap && config.caps.overCap == .reject {
                rejectFile(.overCap, "\(summary.toSend) messages need \(planner.parts) parts under the caps and caps.over_cap is reject")
            }
        }
        closeRequestGroups()
        if let f = batchFile.take() { closedBatches.append(try f.close()) }
        if planner.intervalStretched && planner.batches.count > 1 {
            summary.warnings.append("batches are \(planner.interval / 60) minutes apart, not split.interval: one batch takes that long to submit at send.requests_per_minute")
        }
        if rejected {
            queue.take()?.discard()
            for b in closedBatches { b.remove() }
            summary.parts = planner.parts
            summary.batches = 0
        } else {
            for b in closedBatches { try b.publish() }
            try queue.take()?.commit()
            summary.status = .completed
            summary.parts = planner.parts
            summary.batches = planner.batches.count
            summary.plan = planner.batches.map { b in
                .init(batch: b.number, part: b.part, rows: b.rows, scheduledAt: b.scheduledAt,
                      requests: batchRequests[b.number - 1], groups: batchGroups[b.number - 1], deferred: batchDeferred[b.number - 1])
            }
            summary.deferred = deferredTo.sorted { $0.key < $1.key }.map { .init(scheduledAt: $0.key, rows: $0.value) }
            summary.noteDeferred(window: config.validate.promoWindow)
            summary.noteRequestGroups(config.send)
            summary.estimatedSendSeconds = Int(SendEstimate(config.send).seconds(requestsPerBatch: summary.plan.map(\.requests)).rounded(.up))
        }
        if rejects == nil { try openSideFiles() }
        if firstHeader == nil { rejects!.plain("row,reason,detail\n") }
        try rejects.take()!.commit()
        try duplicates.take()!.commit()
        account(.report, since: &t)
        for (i, name) in JobSummary.stages.enumerated() { summary.stageMs[name] = Int(nanos[i] / 1_000_000) }
    }
}

/// The row's sender bytes: its own cell, or `validate.default_sender`.
@inline(__always)
private func withSender<R, E: Error>(_ v: ValidRow, _ block: borrowing RecordBlock, _ fallback: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
    if v.senderStart >= 0 { return try body(block.bytes.slice(v.senderStart, v.senderEnd)) }
    return try fallback.withUnsafeBufferPointer { (b) throws(E) -> R in try body(b) }
}

