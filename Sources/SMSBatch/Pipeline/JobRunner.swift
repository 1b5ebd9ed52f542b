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

/// A job's outcome: its summary and the exit code it calls for (SPEC §9).
public struct JobResult: Sendable {
    public let summary: JobSummary
    public let exitCode: Int32

    init(summary: JobSummary, credentialsRefused: Bool = false) {
        self.summary = summary
        if credentialsRefused {
            exitCode = 77
        } else {
            switch summary.status {
            case .completed: exitCode = 0
            case .rejected: exitCode = 65
            case .partial, .failed: exitCode = 69
            }
        }
    }
}

/// A run-level error that is not about one file's content: the CLI maps each to its exit code.
public enum RunError: Error, CustomStringConvertible {
    /// The input file cannot be opened (exit 66).
    case input(InputError)
    /// An output file cannot be written.
    case report(ReportError)
    /// A file that configuration points at is unreadable (66) or breaks a limit (78).
    case configuredFile(String, isConfigError: Bool)
    /// A setting that can only be checked at run time (exit 78).
    case config(String)

    public var description: String {
        switch self {
        case .input(let e): e.description
        case .report(let e): e.description
        case .configuredFile(let m, _): m
        case .config(let m): m
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .input: 66
        case .report: 74
        case .configuredFile(_, let isConfig): isConfig ? 78 : 66
        case .config: 78
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
    let progress: Progress
    private var optOut: Set<UInt64>?

    public init(config: PipelineConfig, options: RunOptions, progress: Progress) {
        self.config = config
        self.options = options
        self.progress = progress
    }

    /// Loads what every job of this run shares (the opt-out list) and checks run-time settings.
    public func prepare() throws(RunError) {
        if case .at(let t) = config.split.start, t <= now + 300 {
            throw .config("pipeline.yaml: error: split.start: \(UTCTime.iso(t)) is not more than 5 minutes ahead of now (\(UTCTime.iso(now)))")
        }
        if let p = options.product, !config.validate.products.keys.contains(p.uppercased()) {
            throw .config("error: --product \(p) is not one of the configured products (\(config.validate.products.keys.sorted().joined(separator: " ")))")
        }
        guard let path = config.validate.optoutList else { optOut = []; return }
        do { optOut = try OptOutList.load(path: path, config: config) } catch {
            throw .configuredFile(error.description, isConfigError: error.isConfigError)
        }
    }

    var now: Int64 { options.now ?? Int64(Date().timeIntervalSince1970) }

    /// Processes one file.
    /// - Throws: `RunError.input` when the file cannot be opened (exit 66) and
    ///   `RunError.report` when outputs cannot be written. A rejected file is a normal
    ///   result (`status: rejected`), not an error.
    public func run(path: String, outDir: String? = nil) async throws(RunError) -> JobResult {
        if optOut == nil { try prepare() }
        let started = now
        let clock = ContinuousClock.now
        let file: InputFile
        do { file = try InputFile(path: path) } catch { throw .input(error) }
        let outputs: JobOutputs
        do { outputs = try JobOutputs(config: config, outDir: outDir ?? options.outDir) } catch { throw .report(error) }

        var job = JobState(config: config, options: options, optOut: optOut ?? [], now: started, outputs: outputs, path: path, progress: progress)
        job.summary.input = path
        job.summary.bytes = file.size
        job.summary.startedAt = started
        job.summary.dryRun = options.dryRun
        job.summary.kind = options.kind ?? config.caps.kind
        progress.start(path: path, bytes: file.size)

        do {
            if file.size == 0 {
                job.rejectFile(.noRows, "the file is empty")
            } else if file.size > config.input.maxFileBytes {
                job.rejectFile(.fileTooLarge, "\(file.size) bytes, over input.max_file_bytes (\(config.input.maxFileBytes))")
            } else {
                try job.ingest(file)
            }
            let sha = file.finishDigest()
            job.summary.sha256 = sha
            job.summary.job = "\(UTCTime.compact(started))-\(sha.prefix(8))"
            try job.finish()
        } catch {
            outputs.abandon()
            throw .report(error)
        }
        var summary = job.summary
        var credentialsRefused = false
        do {
            if !options.dryRun && summary.rejectReason == nil {
                credentialsRefused = try await send(&summary, outputs)
            }
            let elapsed = ContinuousClock.now - clock
            summary.finishedAt = started + elapsed.components.seconds
            summary.outputDir = try outputs.publish(jobID: summary.job, summary: &summary)
        } catch {
            outputs.abandon()
            throw .report(error)
        }
        progress.finish(path: path, summary: summary)
        return JobResult(summary: summary, credentialsRefused: credentialsRefused)
    }

    // MARK: - Send

    private var sandbox: SandboxServer?

    /// The API base URL and token: the configured endpoint with the token from the
    /// environment, or the in-process sandbox (SPEC §8), started once per run.
    private func provider() throws(SendError) -> (endpoint: String, token: String) {
        let token = ProcessInfo.processInfo.environment[config.send.tokenEnv].flatMap { $0.isEmpty ? nil : $0 }
        guard config.send.endpoint == "sandbox" else {
            guard let token else { throw .missingToken(config.send.tokenEnv) }
            return (config.send.endpoint, token)
        }
        let sandboxToken = token ?? "sandbox"
        if sandbox == nil {
            let server = SandboxServer(options: SandboxOptions(token: sandboxToken))
            do { _ = try server.start() } catch { throw .unreachable("cannot start the built-in sandbox: \(error)") }
            sandbox = server
        }
        return (sandbox!.endpoint, sandboxToken)
    }

    /// Sends the job's queue and fills in the batch files and the counts. Returns whether
    /// the provider refused the credentials (exit 77).
    private func send(_ summary: inout JobSummary, _ outputs: JobOutputs) async throws(ReportError) -> Bool {
        let start = ContinuousClock.now
        defer { summary.stageMs["send"] = Int((ContinuousClock.now - start) / .milliseconds(1)) }
        let queuePath = outputs.path(JobOutputs.queueName)
        defer { unlink(queuePath) }
        var refusal: SendError? = nil
        var sender: Sender? = nil
        do {
            let (endpoint, token) = try provider()
            let client = ProviderClient(endpoint: endpoint, token: token, auth: config.send.auth,
                                        timeout: config.send.timeout, concurrency: config.send.concurrency)
            sender = Sender(config: config.send, jobID: summary.job, client: client)
            try await sender!.checkCredentials()
        } catch {
            refusal = error
            progress.warn("\(summary.input): \(error.description)")
        }
        let reader = try SendQueueReader(path: queuePath)
        let outcome: Sender.Outcome
        if let sender, refusal == nil {
            outcome = try await sender.run(queue: reader, outputs: outputs)
        } else {
            outcome = try Sender.writeUnsent(queue: reader, outputs: outputs, reason: refusal!.description)
        }
        summary.submitted = outcome.submitted
        summary.failed = outcome.failed
        summary.status = outcome.failed == 0 ? .completed : outcome.submitted == 0 ? .failed : .partial
        if let refusal { summary.warnings.append(refusal.description) }
        switch refusal {
        case .credentialsRefused, .missingToken: return true
        default: return outcome.credentialsRefused
        }
    }
}
