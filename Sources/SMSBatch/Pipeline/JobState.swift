import Foundation

/// One job's first pass: the stages, in order, over blocks of records — validate, dedupe,
/// split, report — each a step type of its stage's folder, with what the whole file decides
/// (file-level rejections, the plan) at the end.
struct JobState: ~Copyable {
    let config: PipelineConfig
    let options: RunOptions
    let now: Int64
    let path: String
    let outputs: JobOutputs
    let progress: ProgressReporter
    private let optOut: Set<UInt64>

    var summary = JobSummary()
    private var validator: RowValidator?
    /// The first entry's header, for the columns of rejects.csv.
    private var firstHeader: [[UInt8]]?
    private var firstColumns = ColumnMap()
    var dedupe: DedupeStep
    private var split: SplitStep
    private var report: ReportStep
    private var stopped = false
    private var nanos = [UInt64](repeating: 0, count: 6)
    private var bytesRead: () -> Int64 = { 0 }
    /// Per block, reused: what validation made of each data record.
    private var outcomes: [RowOutcome] = []

    private enum Stage: Int { case ingest, validate, dedupe, split, send, report }

    init(config: PipelineConfig, options: RunOptions, optOut: Set<UInt64>, now: Int64, outputs: JobOutputs, path: String,
         progress: ProgressReporter) throws(ReportError) {
        self.config = config
        self.options = options
        self.optOut = optOut
        self.now = now
        self.outputs = outputs
        self.path = path
        self.progress = progress
        let products = RowValidator.productTable(config.validate)
        let defaultSender = Array((config.validate.defaultSender ?? "").utf8)
        dedupe = DedupeStep(defaultSender: defaultSender)
        split = SplitStep(config: config, kind: options.kind ?? config.caps.kind, products: products, now: now)
        report = try ReportStep(outputs: outputs, products: products, defaultSender: defaultSender, sending: !options.dryRun)
    }

    private var rejected: Bool { summary.rejectReason != nil }

    /// The first pass over a file: ingest, validate, dedupe, split and the rejects,
    /// duplicates and (dry run) batch files, or the send queue. Returns the job's summary
    /// with its plan.
    static func firstPass(path: String, ticket: JobTicket, config: PipelineConfig, options: RunOptions, optOut: Set<UInt64>,
                          outputs: JobOutputs, progress: ProgressReporter) throws(RunError) -> JobSummary {
        let file: InputFile
        do { file = try InputFile(path: path, hashing: ticket.sha == nil) } catch { throw .input(error) }
        var job: JobState
        do {
            job = try JobState(config: config, options: options, optOut: optOut, now: ticket.clock, outputs: outputs, path: path, progress: progress)
        } catch { throw .report(error) }
        job.summary.input = path
        job.summary.bytes = file.size
        job.summary.startedAt = ticket.clock
        job.summary.dryRun = options.dryRun
        job.summary.kind = options.kind ?? config.caps.kind
        // --force sends the content again: the window would only turn it into duplicates.
        if let ledger = ticket.ledger, let id = ticket.id, config.dedupe.window > 0, !options.force {
            do {
                try ledger.prune(sentBefore: ticket.clock - Int64(config.dedupe.window))
                job.dedupe.recentlySent = Set(try ledger.sentSince(ticket.clock - Int64(config.dedupe.window), excludingJob: id)
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
            return try job.finish()
        } catch {
            outputs.abandon()
            throw .report(error)
        }
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
            options.metrics.beat()  // a long file is a sign of life, block by block
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
            outcomes.append(validator.validate(r, in: block))
        }
        let records = block.records[firstDataRecord...]
        account(.validate, since: &t)
        dedupe.run(records, outcomes, block)
        account(.dedupe, since: &t)
        split.run(outcomes, firstRowOf: dedupe.firstRowOf)
        account(.split, since: &t)
        // Every row goes to exactly one of a batch, rejects.csv, duplicates.csv.
        try report.run(records, outcomes, dedupe: dedupe, split: split, block, into: &summary)
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
            report.headRejects(names)
            report.rejectColumns = nil
        } else if let first = firstHeader, first != names {
            report.rejectColumns = ColumnMap.placement(of: names, columns, under: first, firstColumns)
        } else {
            report.rejectColumns = nil
        }
        validator = RowValidator(columns: columns, config: config, productOverride: options.product, now: now, optOut: optOut)
    }

    // MARK: - Decision and publication

    /// Applies the file-level rules that need the whole file, then publishes or discards
    /// the batch files and fills in the plan.
    mutating func finish() throws(ReportError) -> JobSummary {
        var t = DispatchTime.now().uptimeNanoseconds
        let planner = split.planner
        if !rejected {
            let countable = summary.invalid - report.optedOut
            if summary.rows == 0 {
                rejectFile(.noRows, "no data rows after the header")
            } else if Double(countable) / Double(summary.rows) > config.validate.maxInvalidRatio {
                let notUTF8 = summary.invalidByReason[.invalidUTF8] ?? 0
                let hint = notUTF8 * 2 >= countable && config.input.encoding == .auto
                    ? "; most are invalid_utf8: the file is not UTF-8 (set input.encoding: windows-1252, iso-8859-1 or utf-16)" : ""
                rejectFile(.tooManyInvalid, "\(countable) of \(summary.rows) rows invalid, over validate.max_invalid_ratio (\(config.validate.maxInvalidRatio))" + hint)
            } else if planner.overCap && config.caps.overCap == .reject {
                rejectFile(.overCap, "\(summary.toSend) messages need \(planner.parts) parts under the caps and caps.over_cap is reject")
            }
        }
        split.closeBatch()
        if planner.intervalStretched && planner.batches.count > 1 {
            summary.warnings.append("batches are \(planner.interval / 60) minutes apart, not split.interval: one batch takes that long to submit at send.requests_per_minute")
        }
        summary.parts = planner.parts
        let caps = config.caps
        summary.caps = [
            .init(name: "file_bytes", limit: Int(config.input.maxFileBytes), used: Int(summary.bytes)),
            .init(name: summary.kind.rawValue, limit: summary.kind == .quick ? caps.quick : caps.bulk, used: planner.jobUse.total,
                  largestPart: planner.largestPart.total),
            .init(name: "channel", limit: caps.channel, used: planner.jobUse.channel, largestPart: planner.largestPart.channel),
            .init(name: "voice", limit: caps.voice, used: planner.jobUse.voice, largestPart: planner.largestPart.voice),
            .init(name: "batch_size", limit: config.split.provider.maxBatchSize, used: config.split.batchSize),
        ]
        if rejected {
            summary.batches = 0
        } else {
            summary.status = .completed
            summary.batches = planner.batches.count
            summary.plan = split.plan
            summary.deferred = split.deferred
            summary.noteDeferred(window: config.validate.promoWindow)
            summary.noteRequestGroups(config.send)
            summary.estimatedSendSeconds = Int(SendEstimate(config.send).seconds(requestsPerBatch: summary.plan.map(\.requests)).rounded(.up))
        }
        let rejected = rejected
        try report.finish(rejected: rejected)
        account(.report, since: &t)
        for (i, name) in JobSummary.stages.enumerated() { summary.stageMs[name] = Int(nanos[i] / 1_000_000) }
        return summary
    }
}
