import Foundation

/// Where a job sends: the API base URL, the token, and the name the plan shows.
public struct ProviderEndpoint {
    let url: String
    let token: String
    /// "built-in sandbox", or the endpoint's host (and port when not the scheme's own).
    let name: String

    /// Where a run sends, in words for a person: "the built-in sandbox (nothing leaves this
    /// machine)", the endpoint's host, or nowhere for a dry run.
    public static func describe(_ endpoint: String, dryRun: Bool) -> String {
        if dryRun { return "nowhere (dry run)" }
        return endpoint == "sandbox" ? "the built-in sandbox (nothing leaves this machine)" : name(of: endpoint)
    }

    /// The configured endpoint with the token from the environment, or the built-in sandbox
    /// (SPEC §8) the caller provides.
    static func resolve(_ send: SendConfig, sandbox: BuiltInSandbox?, environment: [String: String]) throws(SendError) -> ProviderEndpoint {
        let name = name(of: send.endpoint)
        let token = environment[send.tokenEnv].flatMap { $0.isEmpty ? nil : $0 }
        guard send.endpoint == "sandbox" else {
            guard let token else { throw .missingToken(send.tokenEnv) }
            return ProviderEndpoint(url: send.endpoint, token: token, name: name)
        }
        guard let sandbox else { throw .unreachable("the built-in sandbox is not available here") }
        let sandboxToken = token ?? "sandbox"
        do {
            return ProviderEndpoint(url: try sandbox.endpoint(token: sandboxToken, send: send), token: sandboxToken, name: name)
        } catch { throw .unreachable("cannot start the built-in sandbox: \(error)") }
    }

    /// The plan's and summary's words for `send.endpoint`.
    static func name(of endpoint: String) -> String {
        guard endpoint != "sandbox" else { return "built-in sandbox" }
        guard let parts = URLComponents(string: endpoint), let host = parts.host else { return "the configured endpoint" }
        return parts.port.map { "\(host):\($0)" } ?? host
    }
}

/// Starts the provider simulator that `send.endpoint: sandbox` sends to (SPEC §8); it lives
/// in its own target, which the command line and the tests give to the pipeline.
public protocol BuiltInSandbox: AnyObject, Sendable {
    /// The API base URL of a simulator accepting `token`, started on first use and kept for
    /// the run; its rate limit follows `send`'s rates.
    func endpoint(token: String, send: SendConfig) throws -> String
}

/// How the send stage ended, for the job's status and exit code.
enum SendStageEnd: Equatable {
    /// Every request ran (whatever each row's fate).
    case ran
    /// A signal stopped it, or earlier requests could not be confirmed: resumes next time.
    case interrupted
    /// Nothing was sent: the provider refused the credentials or no token was set (exit 77).
    case credentialsRefused
    /// Nothing was sent: `send.endpoint` is not the provider's API (exit 78).
    case wrongEndpoint
    /// Nothing was sent: the provider could not be reached (exit 69).
    case unreachable
}

/// The send stage of one job: checks the token (measuring the provider's answer time for
/// the estimate), sends the queue, shows progress, keeps summary.json current from the
/// ledger while it sends, and turns a second Ctrl-C into an abort of the requests in flight.
final class SendStage {
    let config: PipelineConfig
    let outputs: JobOutputs
    let ledger: (any Ledger)?
    let progress: ProgressReporter
    private var sender: Sender?
    private var client: ProviderClient?
    private var refusal: SendError?
    /// Seconds `auth/me` took, once checked.
    private(set) var latency: Double?

    /// How often summary.json is rewritten from the ledger while sending.
    static let summaryEvery: Duration = .seconds(5)

    /// Raised once: no new request; twice: the requests in flight are aborted.
    let stop: StopSignal

    /// Seed of the sender's backoff jitter.
    let seed: UInt64

    /// Where the token is looked up.
    let environment: [String: String]

    /// The clock of the rate limits and backoff.
    let time: any MonotonicClock

    /// Where requests, retries and waits are counted.
    let metrics: PipelineMetrics

    init(config: PipelineConfig, outputs: JobOutputs, ledger: (any Ledger)?, progress: ProgressReporter, stop: StopSignal = .process,
         seed: UInt64? = nil, time: any MonotonicClock = RealClock(), environment: [String: String] = ProcessInfo.processInfo.environment,
         metrics: PipelineMetrics = .none) {
        self.metrics = metrics
        self.stop = stop
        self.time = time
        self.environment = environment
        self.seed = seed ?? UInt64.random(in: 0...UInt64.max)
        self.config = config
        self.outputs = outputs
        self.ledger = ledger
        self.progress = progress
    }

    /// Everything before the plan is shown: where the job sends, the token check (its answer
    /// time refines the estimate), a last look at the file, and the plan and status in the
    /// ledger. Returns whether the job sends: not when the first pass rejected it, nor when
    /// the file changed since it was taken (a new job is then rejected; a resumed one, whose
    /// earlier requests stand, stops `interrupted`).
    func prepare(_ summary: inout JobSummary, ticket: JobTicket, path: String, sandbox: BuiltInSandbox?) async throws(RunError) -> Bool {
        guard let ledger else { return false }
        summary.destination = ProviderEndpoint.name(of: config.send.endpoint)
        var sends = summary.rejectReason == nil
        if sends {
            await connect(jobID: summary.job, clock: ticket.clock) { [config, environment] () throws(SendError) in
                try ProviderEndpoint.resolve(config.send, sandbox: sandbox, environment: environment)
            }
            if let latency {
                summary.measuredLatency = latency
                summary.estimatedSendSeconds = Int(SendEstimate(config.send, latency: latency)
                    .seconds(requestsPerBatch: summary.plan.map(\.requests)).rounded(.up))
            }
            if let change = ticket.snapshot?.change(path: path) {
                sends = false
                unlink(outputs.path(JobOutputs.queueName))
                if ticket.resumed {
                    summary.status = .interrupted
                    summary.warnings.append("\(change); the job resumes when the file is given again")
                    progress.warning(path, "\(change); the job resumes when the file is given again")
                    do { try count(&summary, Sender.Outcome()) } catch { throw .ledger(error) }
                } else {
                    summary.rejectFile(.unreadable, change)
                    progress.error(path, "file rejected: unreadable: \(change)")
                }
            }
        }
        do {
            try ledger.recordPlan(jobID: summary.job, summary.plan.map {
                BatchRecord(batch: $0.batch, part: $0.part, rows: $0.rows, requests: $0.requests, scheduledAt: $0.scheduledAt, deferred: $0.deferred)
            })
            try ledger.updateJob(id: summary.job, status: sends ? .sending : summary.status, counts: JobCounts(summary),
                                 outputDir: outputs.dir, finishedAt: nil, destination: summary.destination)
        } catch { throw .ledger(error) }
        return sends
    }

    /// Resolves the endpoint and checks the token before anything is sent. A refusal is
    /// kept and ends the stage without a request (every row `NOT_SENT`).
    func connect(jobID: String, clock: Int64, endpoint: () throws(SendError) -> ProviderEndpoint) async {
        do {
            let provider = try endpoint()
            let client = ProviderClient(endpoint: provider.url, token: provider.token, auth: config.send.auth,
                                        timeout: config.send.timeout, concurrency: config.send.concurrency, metrics: metrics)
            let sender = Sender(config: config.send, jobID: jobID, client: client, ledger: ledger, clock: clock, stop: stop, time: time, seed: seed,
                                metrics: metrics)
            latency = try await sender.checkCredentials()
            self.client = client
            self.sender = sender
        } catch {
            refusal = error
        }
    }

    /// The refusal `connect` met, as the line to show.
    var refusalMessage: String? { refusal?.message }

    /// Sends the job's queue and fills in the batch files, the counts (from the ledger) and
    /// the status of `summary`.
    /// - Throws: `ReportError` when a batch file cannot be written, `LedgerError` when the
    ///   ledger cannot record a request (nothing more is sent then).
    func run(_ summary: inout JobSummary) async throws -> SendStageEnd {
        let start = ContinuousClock.now
        defer { summary.stageMs["send"] = Int((ContinuousClock.now - start) / .milliseconds(1)) }
        let queuePath = outputs.path(JobOutputs.queueName)
        // Working state only: a resumed job writes it again from the file.
        defer { unlink(queuePath) }
        let reader = try SendQueueReader(path: queuePath)
        var outcome: Sender.Outcome
        var end = SendStageEnd.ran
        if let sender, refusal == nil {
            let before = try ledger?.sendCounts(jobID: summary.job).total ?? SendCounts()
            let ticker = startTicker(summary, base: before, sender: sender)
            do {
                outcome = try await sender.run(queue: reader, outputs: outputs)
            } catch let e as SendError {
                // The provider cannot confirm earlier unanswered requests: send nothing more now.
                progress.error(summary.input, e.message)
                summary.warnings.append(e.message)
                outcome = Sender.Outcome()
                outcome.interrupted = true
            } catch {
                // The ledger or a batch file failed: nothing more is sent, and nothing keeps ticking.
                ticker.cancel()
                await ticker.value
                progress.endSending()
                throw error
            }
            ticker.cancel()
            await ticker.value
            progress.endSending()
            if outcome.credentialsRefused { end = .credentialsRefused }
        } else if case .stopped = refusal {
            outcome = Sender.Outcome()
            outcome.interrupted = true
        } else {
            let reason = refusal?.message ?? "not sent"
            progress.error(summary.input, reason)
            summary.warnings.append(reason)
            // A resumed job keeps what the ledger knows of its rows.
            let settled = try ledger?.finalOutcomes(jobID: summary.job) ?? [:]
            let inDoubt = Set(try ledger?.inDoubtRequests(jobID: summary.job).flatMap(\.rows) ?? [])
            outcome = try Sender.writeUnsent(queue: reader, outputs: outputs, reason: reason, settled: settled, inDoubt: inDoubt)
            switch refusal {
            case .credentialsRefused, .missingToken: end = .credentialsRefused
            case .wrongEndpoint: end = .wrongEndpoint
            case .unreachable, .stopped, nil: end = .unreachable
            }
        }
        try count(&summary, outcome)
        // Stopped by a signal with rows left (not sent, or abandoned in flight): resumes.
        if end == .ran && (outcome.interrupted || (stop.requested && summary.pending + summary.inDoubt > 0)) {
            end = .interrupted
        }
        switch end {
        case .interrupted:
            summary.status = .interrupted
            summary.warnings.append("stopped: \(summary.submitted) of \(summary.toSend) submitted, \(summary.inDoubt) in doubt; the job resumes when the same file is given again")
        case .credentialsRefused, .wrongEndpoint, .unreachable:
            summary.status = .failed
        case .ran:
            summary.status = summary.failed == 0 && summary.inDoubt == 0 && summary.pending == 0 ? .completed
                : summary.submitted == 0 ? .failed : .partial
        }
        return end
    }

    /// The job's counts: from the ledger (what the provider answered, whatever run it was),
    /// plus rows this run wrote as failed without sending them.
    private func count(_ summary: inout JobSummary, _ outcome: Sender.Outcome) throws(LedgerError) {
        if let ledger {
            let (counts, batches) = try ledger.sendCounts(jobID: summary.job)
            for i in summary.plan.indices {
                let b = batches[summary.plan[i].batch] ?? SendCounts()
                summary.plan[i].submitted = b.submitted
                summary.plan[i].failed = b.failed
            }
            summary.submitted = counts.submitted
            summary.failed = counts.failed + outcome.unrecorded
            summary.inDoubt = counts.inDoubt
        } else {
            summary.submitted = outcome.submitted
            summary.failed = outcome.failed
            summary.inDoubt = 0
        }
        summary.pending = max(0, summary.toSend - summary.submitted - summary.failed - summary.inDoubt)
    }

    // MARK: - While sending

    /// Every 0.1 s: a second signal aborts the requests in flight. Every half second (on a
    /// terminal) or 5 s (otherwise): a progress line. Every `summaryEvery`: summary.json from
    /// the ledger, so an interrupted or killed job still says what was sent.
    private func startTicker(_ summary: JobSummary, base: SendCounts, sender: Sender) -> Task<Void, Never> {
        let started = ContinuousClock.now
        let estimate = SendEstimate(config.send)
        let rowsPerRequest = summary.plannedRequests > 0 ? Double(summary.toSend) / Double(summary.plannedRequests) : 1
        return Task { [client, ledger, outputs, progress, stop, metrics] in
            var lastSummary = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                // Every tick: a request handed over after an abort is ended too.
                if stop.now { client?.abortInFlight() }
                let now = ContinuousClock.now
                let s = sender.progress.snapshot
                let submitted = base.submitted + s.submitted
                let remaining = max(0, summary.toSend - submitted - base.failed - s.failed - s.inDoubt)
                // The rows the progress line shows as left, and a sign of life for /healthz
                // (a long Retry-After makes no request and no commit).
                metrics.sending(rowsLeft: remaining)
                var left: Double?
                if let latency = s.meanLatency {
                    var live = estimate
                    live.latency = latency
                    left = live.seconds(requestsPerBatch: [Int((Double(remaining) / rowsPerRequest).rounded(.up))])
                }
                let elapsed = (now - started).seconds
                progress.sending(SendingStatus(path: summary.input, submitted: submitted, total: summary.toSend, failed: base.failed + s.failed,
                                               rowsPerSecond: elapsed > 0 ? Double(s.submitted) / elapsed : 0, secondsLeft: left,
                                               retries: s.retries, inDoubt: s.inDoubt))
                if let ledger, now - lastSummary >= SendStage.summaryEvery {
                    lastSummary = now
                    var current = summary
                    current.status = .sending
                    if let counts = try? ledger.sendCounts(jobID: summary.job).total {
                        current.submitted = counts.submitted
                        current.failed = counts.failed
                        current.inDoubt = counts.inDoubt
                        current.pending = max(0, current.toSend - counts.submitted - counts.failed - counts.inDoubt)
                        try? outputs.writeSummary(current)
                    }
                }
            }
        }
    }
}
