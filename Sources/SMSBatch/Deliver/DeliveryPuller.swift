import Foundation
import Synchronization

/// Pulls delivery reports (SPEC §11) for jobs whose submitted rows still lack a final status:
/// `GET sms/status?group_id=…` page by page for rows whose request's answer named a group,
/// `cid=<job>:<row>` for the others. Every lookup waits for `send.status_requests_per_minute`
/// (its own limiter: sends are not slowed); a 429 pauses every lookup for its Retry-After.
/// Reports are recorded as each page arrives, so a stopped pull loses nothing; running it
/// again records nothing twice.
public final class DeliveryPuller: Sendable {
    /// What a pull did.
    public struct Result: Sendable {
        /// Jobs looked at, and those past `dlr.stop_after` (their pending rows are expired).
        public var jobs: [String] = []
        public var expiredJobs: [String] = []
        /// Lookups made (every page and retry counts).
        public var requests = 0
        public var recording = DeliveryRecording()
        /// Jobs that could not be pulled, and why (the provider kept failing).
        public var failures: [(job: String, reason: String)] = []
        /// The provider refused the token: nothing more was asked.
        public var credentialsRefused: String?
        public init() {}
    }

    let config: PipelineConfig
    let ledger: any Ledger
    let client: ProviderClient
    let limiter: RateLimiter
    let progress: ProgressReporter
    let stop: StopSignal
    let time: any MonotonicClock
    private let jitter: Locked<SplitMix64>

    init(config: PipelineConfig, ledger: any Ledger, endpoint: ProviderEndpoint, progress: ProgressReporter,
         stop: StopSignal = .process, time: any MonotonicClock = RealClock(), seed: UInt64 = 1, metrics: PipelineMetrics = .none) {
        self.config = config
        self.ledger = ledger
        client = ProviderClient(endpoint: endpoint.url, token: endpoint.token, auth: config.send.auth, timeout: config.send.timeout,
                                concurrency: 1, metrics: metrics)
        let account = client.account
        limiter = RateLimiter(perMinute: config.send.statusRequestsPerMinute, clock: time,
                              shared: (ledger as? SharedRateBudget).map { .init(budget: $0, account: account, kind: "status") }) {
            metrics.rateLimitWait.increment(by: $0)
        }
        self.progress = progress
        self.stop = stop
        self.time = time
        jitter = Locked(SplitMix64(seed: seed))
    }

    /// Opens the provider for a pull: the configured endpoint and token, or the built-in
    /// sandbox — which forgets everything when its process ends, so only a sandbox running
    /// in this process (the jobs sent by it) has reports to give.
    public static func make(config: PipelineConfig, ledger: any Ledger, options: RunOptions, progress: ProgressReporter,
                            sandbox: BuiltInSandbox?, stop: StopSignal = .process) throws(SendError) -> DeliveryPuller {
        let endpoint = try ProviderEndpoint.resolve(config.send, sandbox: sandbox,
                                                    environment: options.environment ?? ProcessInfo.processInfo.environment)
        return DeliveryPuller(config: config, ledger: ledger, endpoint: endpoint, progress: progress, stop: stop, time: options.time,
                              seed: options.jitterSeed ?? UInt64.random(in: 0...UInt64.max), metrics: options.metrics)
    }

    /// The monotonic time `pullUntilFinal` stops at, wherever it is (`.infinity` otherwise).
    private let giveUpAt = Locked<Double>(.infinity)
    private var outOfTime: Bool { time.now() >= giveUpAt.withLock { $0 } }

    /// Pulls for `jobIDs` (every job still awaiting reports when empty) and refreshes each
    /// job's result files. `now` (UTC seconds) decides which jobs are past `dlr.stop_after`.
    public func pull(jobIDs: [String] = [], now: Int64) async throws -> Result {
        var result = Result()
        result.recording.add(try ledger.matchUnmatched())
        let ids = jobIDs.isEmpty ? try ledger.jobsAwaitingDelivery() : jobIDs
        for id in ids {
            if stop.requested { break }
            guard let job = try ledger.job(id: id) else { continue }
            result.jobs.append(id)
            let deadline = DeliveryOutputs.deadline(job: job, plan: try ledger.plan(jobID: id), stopAfter: config.dlr.stopAfter)
            if now >= deadline {
                result.expiredJobs.append(id)
            } else if result.credentialsRefused == nil {
                do {
                    try await pullJob(id, into: &result)
                } catch let refusal as SendError {
                    if case .credentialsRefused(let why) = refusal { result.credentialsRefused = why } else { result.failures.append((id, "\(refusal)")) }
                }
            }
            // What was recorded is written out even when the pull stopped half-way; a job
            // whose files cannot be written does not keep the others from being pulled.
            do { try DeliveryOutputs.refresh(job: job, ledger: ledger, config: config, now: now) } catch {
                result.failures.append((id, "result files not updated: \(error)"))
            }
        }
        return result
    }

    /// Pulls for one job until none of its rows awaits a report, or `timeout` seconds have
    /// passed, asking once a second (`run --wait-dlr`: the built-in sandbox forgets its
    /// messages when the run ends).
    public func pullUntilFinal(jobID: String, timeout: Double, now: Int64) async throws -> Result {
        let start = time.now()
        // A round of lookups can take minutes (a large job at status_requests_per_minute):
        // the time limit holds inside a round too.
        giveUpAt.withLock { $0 = start + timeout }
        defer { giveUpAt.withLock { $0 = .infinity } }
        var total = Result()
        while true {
            let r = try await pull(jobIDs: [jobID], now: now)
            total.requests += r.requests
            total.recording.add(r.recording)
            total.failures = r.failures
            total.credentialsRefused = r.credentialsRefused
            total.jobs = r.jobs
            total.expiredJobs = r.expiredJobs
            let left = try ledger.awaitingLookups(jobID: jobID)
            if (left.groups.isEmpty && left.rows.isEmpty) || time.now() - start >= timeout || stop.requested
                || r.credentialsRefused != nil || !r.failures.isEmpty || !r.expiredJobs.isEmpty { return total }
            await time.sleep(seconds: min(1, max(0, timeout - (time.now() - start))))
        }
    }

    private func pullJob(_ id: String, into result: inout Result) async throws {
        let (groups, loose) = try ledger.awaitingLookups(jobID: id)
        for group in groups {
            if stop.requested || outOfTime { return }
            try await lookUp([("group_id", group)], into: &result)
        }
        for row in loose {
            if stop.requested || outOfTime { return }
            try await lookUp([("cid", "\(id):\(row)")], into: &result)
        }
    }

    /// One lookup, every page of it; each page's reports are recorded as it arrives.
    private func lookUp(_ selector: [(String, String)], into result: inout Result) async throws {
        var page = 1
        var failures = 0
        var limited = 0
        while true {
            if stop.requested || outOfTime { return }
            await limiter.acquire()
            result.requests += 1
            let reply: HTTPReply
            switch await client.get("sms/status", query: selector + [("page", String(page))]) {
            case .success(let r): reply = r
            case .failure(let f):
                failures += 1
                if failures >= config.send.maxAttempts { throw SendError.unreachable(f.message) }
                await backoff(failures)
                continue
            }
            if reply.status == 401 || reply.status == 403 {
                throw SendError.credentialsRefused("sms/status answered \(reply.status) \(reply.errorCodeAndMessage.1)")
            }
            if reply.status == 429 {
                // Waited out, however long; but a provider that never lets a lookup through
                // must not hold a drain (and the spool's lock) for ever.
                limited += 1
                if limited > 100 { throw SendError.unreachable("sms/status answered 429 a hundred times in a row") }
                await limiter.pause(for: reply.retryAfter ?? 1)
                continue
            }
            limited = 0
            guard (200..<300).contains(reply.status), let json = JSONValue.parse(reply.body) else {
                failures += 1
                if failures >= config.send.maxAttempts {
                    throw SendError.unreachable("sms/status answered \(reply.status) \(reply.errorCodeAndMessage.1)")
                }
                await backoff(failures)
                continue
            }
            failures = 0
            let reports = Self.reports(json)
            if !reports.isEmpty {
                result.recording.add(try ledger.recordDeliveries(reports, receivedAt: Int64(Date().timeIntervalSince1970)))
            }
            guard Self.hasNextPage(json, page: page) else { return }
            page += 1
        }
    }

    /// The reports in an `sms/status` answer's `data`.
    static func reports(_ json: JSONValue) -> [DeliveryReport] {
        guard case .array(let items)? = json["data"] else { return [] }
        return items.compactMap { item in
            guard let status = item["status"]?.text else { return nil }
            let custom = item["customid"]?.text ?? item["custom"]?.text ?? item["cid"]?.text ?? ""
            return DeliveryReport(messageId: item["id"]?.text ?? "", custom: custom, status: status,
                                  at: reportTime(item, ["delivered_at", "deliv_at", "dlr_at", "done_at"]))
        }
    }

    /// A report's time: unix seconds (as a number or a string) or an ISO 8601 time.
    static func reportTime(_ item: JSONValue, _ names: [String]) -> Int64? {
        for name in names {
            guard let text = item[name]?.text, !text.isEmpty else { continue }
            if let seconds = DeliveryReport.seconds(text) { return seconds }
            if let t = parseISO8601(text) { return t }
        }
        return nil
    }

    /// Whether `meta.last_page` (or `links.next`) says there is a page after `page`.
    static func hasNextPage(_ json: JSONValue, page: Int) -> Bool {
        if let last = json["meta"]?["last_page"]?.text.flatMap({ Int($0) }) { return page < last }
        if let next = json["links"]?["next"] { return next != .null }
        return false
    }

    private func backoff(_ attempt: Int) async {
        await time.sleep(seconds: jitter.withLock { Backoff.seconds(attempt: attempt, using: &$0) })
    }
}
