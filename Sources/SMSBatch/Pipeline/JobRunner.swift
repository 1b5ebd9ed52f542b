import Foundation

/// Runs files as jobs, one after another: admission by the ledger (new, repeat or resume),
/// the first pass (ingest → validate → dedupe → split, `JobState`), the send stage, and
/// publication of the outputs. It only orders these steps; each lives with its stage.
public final class JobRunner {
    let config: PipelineConfig
    let options: RunOptions
    let progress: ProgressReporter
    /// The simulator for `send.endpoint: sandbox`, when the caller has one.
    let sandbox: BuiltInSandbox?
    private var ledger: (any Ledger)?
    /// Raised: the job in progress stops (SPEC §10).
    let stop: StopSignal
    private var optOut: Set<UInt64>?
    /// Called with the plan once the file is read and before anything is sent.
    public var onPlan: ((JobSummary) -> Void)?

    /// `ledger`: the state ledger to use; by default the one `state` configures, opened when
    /// the first job sends.
    public init(config: PipelineConfig, options: RunOptions, progress: ProgressReporter, sandbox: BuiltInSandbox? = nil,
                ledger: (any Ledger)? = nil, stop: StopSignal = .process) {
        self.stop = stop
        self.config = config
        self.options = options
        self.progress = progress
        self.sandbox = sandbox
        self.ledger = ledger
    }

    /// Loads what every job of this run shares (the opt-out list) and checks run-time settings.
    public func prepare() throws(RunError) {
        if case .at(let t) = config.split.start, t <= now + 300 {
            throw .setting(subject: "split.start", problem: "\(UTCTime.iso(t)) is not more than 5 minutes ahead of now (\(UTCTime.iso(now)))")
        }
        if let p = options.product, !config.validate.products.keys.contains(p.uppercased()) {
            throw .setting(subject: "--product", problem: "\(p) is not one of the configured products (\(config.validate.products.keys.sorted().joined(separator: " ")))")
        }
        guard let path = config.validate.optoutList else { optOut = []; return }
        do { optOut = try OptOutList.load(path: path, config: config) } catch { throw .configuredFile(error) }
        if optOut?.isEmpty == true { progress.warning(path, "validate.optout_list holds no valid number: nobody is opted out") }
    }

    var now: Int64 { options.now ?? Int64(Date().timeIntervalSince1970) }

    /// The ledger of this run, opened on first use.
    func openLedger() throws(RunError) -> any Ledger {
        if let ledger { return ledger }
        do { ledger = try LedgerStore.open(config, metrics: options.metrics) } catch { throw .ledger(error) }
        return ledger!
    }

    /// Processes one file.
    /// - Throws: `RunError.input` when the file cannot be opened (exit 66),
    ///   `RunError.report` when outputs cannot be written, `RunError.ledger` when the state
    ///   ledger cannot be used. A rejected file is a normal result (`status: rejected`).
    public func run(path: String, outDir: String? = nil) async throws(RunError) -> JobResult {
        do {
            let result = try await admitAndRun(path: path, outDir: outDir)
            options.metrics.jobEnded(result.summary, fileFailed: result.exitStatus != .ok)
            return result
        } catch {
            // The file itself cannot be a job (the spool files it in failed/); a busy job, the
            // ledger or the outputs leave it to be taken up again.
            switch error {
            case .input, .configuredFile, .setting: options.metrics.fileFailed()
            case .busy, .ledger, .report: break
            }
            throw error
        }
    }

    private func admitAndRun(path: String, outDir: String?) async throws(RunError) -> JobResult {
        if optOut == nil { try prepare() }
        let outDir = outDir ?? options.outDir
        if options.dryRun { return try await runJob(path: path, ticket: .dryRun(clock: now, dir: outDir)) }
        let ledger = try openLedger()
        do { _ = try InputFile(path: path) } catch { throw .input(error) }
        // Taken before hashing: any write from here on shows in the size or mtime.
        let snapshot = FileSnapshot(path: path)
        guard let sha = FileDigest.sha256(path: path) else {
            throw .input(InputError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))"))
        }
        let admission = Admission(ledger: ledger, outbox: config.outbox, force: options.force, now: now)
        switch try await admission.admit(path: path, sha: sha, snapshot: snapshot, outDir: outDir) {
        case .repeatOf(let previous, let id, let clock, let dir):
            var summary = JobSummary.repeatOf(previous.id, job: id, path: path, sha: sha, clock: clock)
            do { summary.outputDir = try JobOutputs(config: config, outDir: dir, keepBatches: true).publish(jobID: id, summary: &summary) }
            catch { throw .report(error) }
            progress.note(path, "repeat of job \(previous.id): nothing sent")
            return JobResult(summary: summary)
        case .run(let ticket):
            if ticket.resumed { progress.note(path, "resuming job \(ticket.id!)") }
            do {
                return try await runJob(path: path, ticket: ticket)
            } catch {
                // The job is taken up again (here or, on PostgreSQL, by any worker): its hold
                // goes now, not on a renewal that would outlive the job.
                if let lock = ticket.lock, let dir = ticket.dir { await ticket.ledger?.releaseJob(lock, outputDir: dir) }
                throw error
            }
        }
    }

    private func runJob(path: String, ticket: JobTicket) async throws(RunError) -> JobResult {
        let clock = ContinuousClock.now
        let outputs: JobOutputs
        do { outputs = try JobOutputs(config: config, outDir: ticket.dir) } catch { throw .report(error) }
        var summary = try JobState.firstPass(path: path, ticket: ticket, config: config, options: options, optOut: optOut ?? [],
                                             outputs: outputs, progress: progress)
        var stage: SendStage?
        if let ledger = ticket.ledger {
            let send = SendStage(config: config, outputs: outputs, ledger: ledger, progress: progress, stop: stop, seed: options.jitterSeed, time: options.time,
                                 environment: options.environment ?? ProcessInfo.processInfo.environment, metrics: options.metrics)
            if try await send.prepare(&summary, ticket: ticket, path: path, sandbox: sandbox) { stage = send }
        }
        onPlan?(summary)
        var end: SendStageEnd?
        do {
            if let stage { end = try await stage.run(&summary) }
            summary.finishedAt = ticket.clock + (ContinuousClock.now - clock).components.seconds
            try ticket.ledger?.updateJob(id: summary.job, status: summary.status, counts: JobCounts(summary), outputDir: outputs.dir,
                                         finishedAt: summary.status == .interrupted ? nil : summary.finishedAt)
            summary.outputDir = try outputs.publish(jobID: summary.job, summary: &summary)
            // Reports that arrived while the job sent (a webhook, a resumed job's earlier
            // rows) go into the files just written, which show every row awaiting.
            if let ledger = ticket.ledger, !(try ledger.finalDeliveryCounts(jobID: summary.job)).isEmpty,
               let record = try ledger.job(id: summary.job) {
                do { try DeliveryOutputs.refresh(job: record, ledger: ledger, config: config, now: now) } catch {
                    progress.warning(outputs.dir, "delivery columns not written: \(error); the next pull writes them")
                }
            }
        } catch let e as LedgerError {
            throw .ledger(e)
        } catch {
            outputs.abandon()
            throw .report(error as? ReportError ?? ReportError(path: outputs.dir, errno: EIO))
        }
        progress.finished(summary)
        if let lock = ticket.lock { await ticket.ledger?.releaseJob(lock, outputDir: outputs.dir) }
        return JobResult(summary: summary, sendEnd: end)
    }
}
