import Foundation

/// What `smsbatch run` was asked to do beyond pipeline.yaml.
public struct RunOptions: Sendable {
    public var outDir: String?
    public var kind: CampaignKind?
    public var product: String?
    public var dryRun = false
    /// Pretend the current time is this (UTC seconds).
    public var now: Int64?
    public var force = false
    public init() {}
}

/// A job's outcome: its summary and the exit status it calls for (SPEC §9).
public struct JobResult: Sendable {
    public let summary: JobSummary
    public let exitStatus: ExitStatus

    /// Stopped by a signal, or unable to confirm earlier requests: the file stays in
    /// processing/ and the job resumes on the next start.
    public var interrupted: Bool { summary.status == .interrupted }

    init(summary: JobSummary, sendEnd: SendStageEnd? = nil) {
        self.summary = summary
        switch sendEnd {
        case .interrupted: exitStatus = .ok  // SPEC §10: a signal ends the run cleanly; the job resumes next time
        case .credentialsRefused: exitStatus = .credentials
        case .wrongEndpoint: exitStatus = .config
        case .unreachable: exitStatus = .unavailable
        case .ran, nil:
            switch summary.status {
            case .completed, .interrupted: exitStatus = .ok
            case .rejected: exitStatus = .rejected
            case .partial, .failed, .running, .sending: exitStatus = .unavailable
            }
        }
    }
}

/// A run-level error that is not about one file's content.
public enum RunError: Diagnosable {
    /// The input file cannot be opened (exit 66).
    case input(InputError)
    /// An output file cannot be written (exit 74).
    case report(ReportError)
    /// A file that configuration points at is unreadable (66) or breaks a limit (78).
    case configuredFile(any Diagnosable)
    /// A setting that can only be checked at run time (exit 78): about `subject` (a key or flag).
    case setting(subject: String, problem: String)
    /// The state ledger cannot be opened or written (exit 74).
    case ledger(LedgerError)
    /// Another process is running this job (exit 75): try later.
    case busy(subject: String, problem: String)

    private var underlying: (any Diagnosable)? {
        switch self {
        case .input(let e): e
        case .report(let e): e
        case .configuredFile(let e): e
        case .ledger(let e): e
        case .setting, .busy: nil
        }
    }

    public var subject: String {
        switch self {
        case .setting(let subject, _), .busy(let subject, _): subject
        default: underlying!.subject
        }
    }

    public var problem: String {
        switch self {
        case .setting(_, let problem), .busy(_, let problem): problem
        default: underlying!.problem
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .setting: .config
        case .busy: .tryLater
        default: underlying!.exitStatus
        }
    }
}

/// Runs one file through ingest → validate → dedupe → split → (send) → report.
///
/// The stages work a block of records at a time, so memory stays bounded by the block and
/// the dedupe index whatever the file size. Batch files are written as rows arrive, under
/// temporary names, and only published when the file as a whole is accepted.
public final class JobRunner {
    let config: PipelineConfig
    let options: RunOptions
    let progress: ProgressReporter
    private var optOut: Set<UInt64>?
    /// Called with the plan once the file is read and before anything is sent.
    public var onPlan: ((JobSummary) -> Void)?

    /// The simulator for `send.endpoint: sandbox`, when the caller has one.
    let sandbox: BuiltInSandbox?

    public init(config: PipelineConfig, options: RunOptions, progress: ProgressReporter, sandbox: BuiltInSandbox? = nil) {
        self.sandbox = sandbox
        self.config = config
        self.options = options
        self.progress = progress
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
        do { optOut = try OptOutList.load(path: path, config: config) } catch {
            throw .configuredFile(error)
        }
        if optOut?.isEmpty == true {
            progress.warning(path, "validate.optout_list holds no valid number: nobody is opted out")
        }
    }

    var now: Int64 { options.now ?? Int64(Date().timeIntervalSince1970) }

    /// Processes one file.
    /// - Throws: `RunError.input` when the file cannot be opened (exit 66),
    ///   `RunError.report` when outputs cannot be written, `RunError.ledger` when the state
    ///   ledger cannot be used. A rejected file is a normal result (`status: rejected`).
    public func run(path: String, outDir: String? = nil) async throws(RunError) -> JobResult {
        if optOut == nil { try prepare() }
        if options.dryRun { return try await runJob(path: path, plan: JobPlan(id: nil, clock: now, dir: outDir ?? options.outDir, ledger: nil)) }

        // Sending: the ledger decides whether this content is new, a repeat or a resume —
        // under a lock, so two processes given the same content never both start a job.
        let ledger = try openLedger()
        do { _ = try InputFile(path: path) } catch { throw .input(error) }
        // Taken before hashing: any write from here on shows in the size or mtime.
        let snapshot = FileSnapshot(path: path)
        guard let sha = FileDigest.sha256(path: path) else { throw .input(InputError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))")) }
        let decision = await FileLock.exclusive(config.statePath + ".lock")
        defer { decision?.release() }
        let previous: JobRecord?
        do { previous = try ledger.latestJob(sha256: sha) } catch { throw .ledger(error) }
        if let previous {
            if previous.status == .completed && !options.force {
                return try recordRepeat(of: previous, path: path, sha: sha, outDir: outDir, ledger: ledger)
            }
            if previous.status.isResumable {
                guard let dir = previous.outputDir, let lock = FileLock.exclusive(JobOutputs.lockPath(dir), wait: false) else {
                    throw .busy(subject: path, problem: "job \(previous.id) for the same content is running in another process")
                }
                decision?.release()
                progress.note(path, "resuming job \(previous.id)")
                return try await runJob(path: path, plan: JobPlan(id: previous.id, sha: sha, clock: previous.clock, dir: dir,
                                                                  ledger: ledger, lock: lock, snapshot: snapshot, resumed: true))
            }
        }
        let (id, clock) = freshJobID(sha: sha, ledger: ledger)
        let dir = outDir ?? options.outDir ?? (outbox as NSString).appendingPathComponent(id)
        guard let lock = FileLock.exclusive(JobOutputs.lockPath(dir), wait: false) else {
            throw .busy(subject: dir, problem: "another process is writing a job into this folder")
        }
        do {
            try ledger.createJob(JobRecord(id: id, input: path, sha256: sha, status: .running, clock: clock, outputDir: dir, startedAt: now))
        } catch { throw .ledger(error) }
        decision?.release()
        return try await runJob(path: path, plan: JobPlan(id: id, sha: sha, clock: clock, dir: dir, ledger: ledger, lock: lock, snapshot: snapshot))
    }

    /// How a job runs: its id and clock when known in advance (sending), where its outputs go.
    struct JobPlan {
        var id: String?
        /// Known in advance when sending (the ledger needs it first); a dry run hashes alongside.
        var sha: String? = nil
        var clock: Int64
        var dir: String?
        var ledger: Ledger?
        /// Held while the job runs: a second process never works on the same job.
        var lock: FileLock? = nil
        /// The file's size and mtime when it was taken, before it was hashed.
        var snapshot: FileSnapshot? = nil
        /// The ledger knew the job: earlier runs may have sent some of it.
        var resumed = false
    }

    var outbox: String { (config.watch.root as NSString).appendingPathComponent("outbox") }

    private var openedLedger: Ledger?

    func openLedger() throws(RunError) -> Ledger {
        if let openedLedger { return openedLedger }
        do {
            let l = try Ledger(path: config.statePath)
            openedLedger = l
            return l
        } catch { throw .ledger(error) }
    }

    /// SPEC §7: `<UTC time yyyyMMdd'T'HHmmss'Z'>-<first 8 hex digits of the SHA-256>`.
    static func jobID(clock: Int64, sha: String) -> String { "\(UTCTime.compact(clock))-\(sha.prefix(8))" }

    /// A job id no job in the ledger has yet: --force (or an earlier rejected attempt) in the
    /// same second moves the clock on a second.
    private func freshJobID(sha: String, ledger: Ledger) -> (id: String, clock: Int64) {
        var clock = now
        while (try? ledger.job(id: JobRunner.jobID(clock: clock, sha: sha))) != nil { clock += 1 }
        return (JobRunner.jobID(clock: clock, sha: sha), clock)
    }

    /// SPEC §10: content already sent by a completed job is not sent again; the repeat is
    /// recorded and its summary says which job it repeats.
    private func recordRepeat(of previous: JobRecord, path: String, sha: String, outDir: String?, ledger: Ledger) throws(RunError) -> JobResult {
        let (id, clock) = freshJobID(sha: sha, ledger: ledger)
        // Never over the first job's own folder (a repeat run with the same --out).
        let asked = outDir ?? options.outDir
        let dir = asked.flatMap { $0 == previous.outputDir ? nil : $0 } ?? (outbox as NSString).appendingPathComponent(id)
        var summary = JobSummary()
        summary.job = id
        summary.input = path
        summary.sha256 = sha
        summary.bytes = Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        summary.startedAt = clock
        summary.finishedAt = clock
        summary.dryRun = false
        summary.repeatOf = previous.id
        summary.warnings.append("the same content was sent by job \(previous.id); nothing sent (use --force to send it again)")
        do {
            try ledger.createJob(JobRecord(id: id, input: path, sha256: sha, status: .completed, clock: clock, outputDir: dir,
                                           repeatOf: previous.id, startedAt: clock, finishedAt: clock))
            let outputs = try JobOutputs(config: config, outDir: dir, keepBatches: true)
            summary.outputDir = try outputs.publish(jobID: id, summary: &summary)
        } catch let e as LedgerError { throw .ledger(e) } catch let e as ReportError { throw .report(e) } catch { throw .report(ReportError(path: dir, errno: EIO)) }
        progress.note(path, "repeat of job \(previous.id): nothing sent")
        return JobResult(summary: summary)
    }

    private func runJob(path: String, plan: JobPlan) async throws(RunError) -> JobResult {
        let started = plan.clock
        let clock = ContinuousClock.now
        let file: InputFile
        do { file = try InputFile(path: path, hashing: plan.sha == nil) } catch { throw .input(error) }
        let outputs: JobOutputs
        do { outputs = try JobOutputs(config: config, outDir: plan.dir) } catch { throw .report(error) }

        var job = JobState(config: config, options: options, optOut: optOut ?? [], now: started, outputs: outputs, path: path, progress: progress)
        job.summary.input = path
        job.summary.bytes = file.size
        job.summary.startedAt = started
        job.summary.dryRun = options.dryRun
        job.summary.kind = options.kind ?? config.caps.kind
        // --force sends the content again: the window would only turn it into duplicates.
        if let ledger = plan.ledger, let id = plan.id, config.dedupe.window > 0, !options.force {
            do {
                try ledger.prune(sentBefore: started - Int64(config.dedupe.window))
                job.recentlySent = Set(try ledger.sentSince(started - Int64(config.dedupe.window), excludingJob: id).map { MessageDigest(high: $0.hi, low: $0.lo) })
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
                // stopped below: its earlier requests stand).
                if !plan.resumed, let change = plan.snapshot?.change(path: path) { job.rejectFile(.unreadable, change) }
            }
            let sha = plan.sha ?? file.finishDigest()
            job.summary.sha256 = sha
            job.summary.job = plan.id ?? JobRunner.jobID(clock: started, sha: sha)
            try job.finish()
        } catch {
            outputs.abandon()
            throw .report(error)
        }
        var summary = job.summary
        let sending = plan.ledger != nil && summary.rejectReason == nil
        var stage: SendStage?
        if let ledger = plan.ledger {
            summary.destination = ProviderEndpoint.name(of: config.send.endpoint)
            if sending {
                let send = SendStage(config: config, outputs: outputs, ledger: ledger, progress: progress)
                await send.connect(jobID: summary.job, clock: started) { () throws(SendError) in try provider() }
                if let latency = send.latency {
                    summary.measuredLatency = latency
                    summary.estimatedSendSeconds = Int(SendEstimate(config.send, latency: latency)
                        .seconds(requestsPerBatch: summary.plan.map(\.requests)).rounded(.up))
                }
                // The last look before the first request: a file still being written is not sent.
                if let change = plan.snapshot?.change(path: path) {
                    unlink(outputs.path(JobOutputs.queueName))
                    if plan.resumed {
                        // Earlier runs' requests stand: stop here; the job resumes when the
                        // file is given again and stays still.
                        summary.status = .interrupted
                        summary.warnings.append("\(change); the job resumes when the file is given again")
                        progress.warning(path, "\(change); the job resumes when the file is given again")
                        do {
                            let counts = try ledger.sendCounts(jobID: summary.job).total
                            (summary.submitted, summary.failed, summary.inDoubt) = (counts.submitted, counts.failed, counts.inDoubt)
                            summary.pending = max(0, summary.toSend - counts.submitted - counts.failed - counts.inDoubt)
                        } catch { throw .ledger(error) }
                    } else {
                        summary.rejectFile(.unreadable, change)
                        progress.error(path, "file rejected: unreadable: \(change)")
                    }
                } else {
                    stage = send
                }
            }
            do {
                try ledger.recordPlan(jobID: summary.job, summary.plan.map {
                    Ledger.PlannedBatch(batch: $0.batch, part: $0.part, rows: $0.rows, requests: $0.requests,
                                        scheduledAt: $0.scheduledAt, deferred: $0.deferred)
                })
                try ledger.updateJob(id: summary.job, status: stage != nil ? .sending : summary.status, counts: counts(summary),
                                     outputDir: outputs.dir, destination: summary.destination)
            } catch { throw .ledger(error) }
        }
        onPlan?(summary)
        var end: SendStageEnd?
        do {
            if let stage { end = try await stage.run(&summary) }
            let elapsed = ContinuousClock.now - clock
            summary.finishedAt = started + elapsed.components.seconds
            if let ledger = plan.ledger {
                try ledger.updateJob(id: summary.job, status: summary.status, counts: counts(summary), outputDir: outputs.dir,
                                     finishedAt: summary.status == .interrupted ? nil : summary.finishedAt)
            }
            summary.outputDir = try outputs.publish(jobID: summary.job, summary: &summary)
        } catch let e as ReportError {
            outputs.abandon()
            throw .report(e)
        } catch let e as LedgerError {
            throw .ledger(e)
        } catch {
            throw .report(ReportError(path: outputs.dir, errno: EIO))
        }
        progress.finished(summary)
        await release(plan.lock, dir: outputs.dir)
        return JobResult(summary: summary, sendEnd: end)
    }

    /// Lets go of a job's lock and removes its file, under the ledger's decision lock: a
    /// process deciding about the same job then either saw the lock held or finds no file.
    private func release(_ lock: FileLock?, dir: String) async {
        guard let lock else { return }
        let decision = await FileLock.exclusive(config.statePath + ".lock")
        unlink(JobOutputs.lockPath(dir))
        lock.release()
        decision?.release()
    }

    private func counts(_ s: JobSummary) -> Ledger.JobCounts {
        Ledger.JobCounts(rows: s.rows, valid: s.valid, invalid: s.invalid, duplicates: s.duplicates, toSend: s.toSend,
                         submitted: s.submitted, failed: s.failed, inDoubt: s.inDoubt)
    }

    // MARK: - Send

    /// The API base URL and token: the configured endpoint with the token from the
    /// environment, or the built-in sandbox (SPEC §8) the caller provides.
    private func provider() throws(SendError) -> ProviderEndpoint {
        let name = ProviderEndpoint.name(of: config.send.endpoint)
        let token = ProcessInfo.processInfo.environment[config.send.tokenEnv].flatMap { $0.isEmpty ? nil : $0 }
        guard config.send.endpoint == "sandbox" else {
            guard let token else { throw .missingToken(config.send.tokenEnv) }
            return ProviderEndpoint(url: config.send.endpoint, token: token, name: name)
        }
        guard let sandbox else { throw .unreachable("the built-in sandbox is not available here") }
        let sandboxToken = token ?? "sandbox"
        do {
            return ProviderEndpoint(url: try sandbox.endpoint(token: sandboxToken, send: config.send), token: sandboxToken, name: name)
        } catch { throw .unreachable("cannot start the built-in sandbox: \(error)") }
    }
}

/// Starts the provider simulator that `send.endpoint: sandbox` sends to (SPEC §8); it lives
/// in its own target, which the command line and the tests give to the pipeline.
public protocol BuiltInSandbox: AnyObject, Sendable {
    /// The API base URL of a simulator accepting `token`, started on first use and kept for
    /// the run; its rate limit follows `send`'s rates.
    func endpoint(token: String, send: SendConfig) throws -> String
}

/// A file's size and modification time, to see whether it changed since it was taken.
struct FileSnapshot: Equatable {
    let size: Int64
    let mtime: timespec

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        size = Int64(st.st_size)
        mtime = st.st_mtim
    }

    static func == (a: FileSnapshot, b: FileSnapshot) -> Bool {
        a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
    }

    /// Why the file at `path` is no longer what was taken, or nil when it is unchanged.
    func change(path: String) -> String? {
        guard let now = FileSnapshot(path: path) else { return "the file disappeared while it was being read" }
        guard now != self else { return nil }
        return "the file changed after it was taken (\(size) bytes, now \(now.size)): it was still being written; "
            + "nothing was sent. Upload under a .part name and rename it when complete"
    }
}
