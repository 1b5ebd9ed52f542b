import Foundation
import Synchronization

/// What happened to one row at the provider (a batch file's result columns, SPEC §7).
struct RowResult: Sendable {
    var submitted: Bool
    var messageId = ""
    var httpStatus: Int?
    var errorCode: RowErrorCode? = nil
    var errorMessage = ""
    var attempts = 0
    /// The request's group at the provider, when its answer named one.
    var groupId: String? = nil
}

extension RowResult {
    init(_ o: RequestOutcome) {
        self.init(submitted: o.submitted, messageId: o.messageId, httpStatus: o.httpStatus,
                  errorCode: RowErrorCode(text: o.errorCode), errorMessage: o.errorMessage, attempts: o.attempts)
    }
}

extension RequestOutcome {
    /// A provider 4xx other than 429 is final for the row: a resumed job does not send it
    /// again (SPEC §10); retries exhausted on 5xx or silence are not.
    var isFinalFailure: Bool {
        guard !submitted, let s = httpStatus else { return false }
        return (400..<500).contains(s) && s != 429
    }
}

/// The send stage could not go on at all.
public enum SendError: Error, CustomStringConvertible, Sendable {
    /// 401/403 or a non-JSON answer from `auth/me` (exit 77).
    case credentialsRefused(String)
    /// No token in the environment for a real endpoint (exit 77).
    case missingToken(String)
    /// The provider could not be reached to check the token (exit 69).
    case unreachable(String)
    /// A signal came before anything was sent: the job resumes next time (exit 0).
    case stopped
    /// `auth/me` answered 404: `send.endpoint` is not the API's base URL (exit 78).
    case wrongEndpoint(String)

    /// What went wrong, for the job's subject (its file) to go with.
    public var message: String {
        switch self {
        case .credentialsRefused(let m): "the provider refused the credentials: \(m)"
        case .missingToken(let v): "no access token: set the environment variable \(v) (send.token_env)"
        case .unreachable(let m): "cannot reach the provider at send.endpoint: \(m)"
        case .wrongEndpoint(let m): "send.endpoint is not the provider's API: \(m)"
        case .stopped: "stopped by a signal before anything was sent"
        }
    }

    public var description: String { message }

    /// The exit status a command ends with when this stops it (SPEC §9).
    public var exitStatus: ExitStatus {
        switch self {
        case .credentialsRefused, .missingToken: .credentials
        case .unreachable: .unavailable
        case .wrongEndpoint: .config
        case .stopped: .ok
        }
    }
}

/// Sends the queued rows batch by batch (SPEC §8) and writes each batch's result file.
///
/// Requests carry at most `nodes_per_request` rows of one batch with one product and one
/// time; up to `concurrency` are in flight. 429s pause everyone for Retry-After; 5xx and
/// connection failures are retried with exponential backoff and jitter up to
/// `max_attempts`. A request that got no answer is in doubt: its rows are looked up at the
/// provider (`sms/status?cid=`) before anything is sent again, so no row is sent twice.
final class Sender: Sendable {
    let config: SendConfig
    let jobID: String
    let client: ProviderClient
    /// Sends (POST `sms/send/json`), within `requests_per_minute`.
    let limiter: RateLimiter
    /// Lookups (GET `auth/me`, `sms/status`), within `status_requests_per_minute`: the
    /// platform counts GETs apart from sends.
    let lookupLimiter: RateLimiter
    /// Where every request is recorded as intent before it goes out and as an answer after
    /// (SPEC §10); nil for tests of the sender alone.
    let ledger: (any Ledger)?
    /// The job's clock, recorded as the send time of accepted messages (dedupe.window).
    let clock: Int64
    private let trouble = Locked<LedgerError?>(nil)
    /// What the progress line and the live estimate read.
    let progress: SendProgress
    /// Raised: no new request starts.
    let stop: StopSignal

    /// Time for the rate limits and backoff (a virtual clock in tests).
    let time: any MonotonicClock
    /// The backoff jitter: seeded, so a test's retries are the same every run.
    private let jitter: Locked<SplitMix64>
    /// Where retries, 429 waits, in-doubt lookups and settled rows are counted.
    let metrics: PipelineMetrics

    init(config: SendConfig, jobID: String, client: ProviderClient, ledger: (any Ledger)? = nil, clock: Int64 = 0,
         progress: SendProgress = SendProgress(), stop: StopSignal = .process, time: any MonotonicClock = RealClock(),
         seed: UInt64 = UInt64.random(in: 0...UInt64.max), metrics: PipelineMetrics = .none) {
        self.metrics = metrics
        self.progress = progress
        self.stop = stop
        self.time = time
        jitter = Locked(SplitMix64(seed: seed))
        self.config = config
        self.jobID = jobID
        self.client = client
        self.ledger = ledger
        self.clock = clock
        let budget = ledger as? SharedRateBudget
        limiter = RateLimiter(perMinute: config.requestsPerMinute, clock: time,
                              shared: budget.map { .init(budget: $0, account: client.account, kind: "send") }) { metrics.rateLimitWait.increment(by: $0) }
        lookupLimiter = RateLimiter(perMinute: config.statusRequestsPerMinute, clock: time,
                                    shared: budget.map { .init(budget: $0, account: client.account, kind: "status") }) { metrics.rateLimitWait.increment(by: $0) }
    }

    /// Checks the token before anything is sent.
    /// - Throws: `SendError.credentialsRefused` on 401/403 or a non-JSON answer,
    ///   `.unreachable` when no answer came after `max_attempts`.
    /// - Returns: the seconds `auth/me` took to answer: the provider's answer time, which
    ///   the send estimate uses.
    @discardableResult
    func checkCredentials() async throws(SendError) -> Double {
        var last = ""
        for attempt in 1...config.maxAttempts {
            if stop.requested { throw .stopped }
            await lookupLimiter.acquire()
            let started = ContinuousClock.now
            switch await client.get("auth/me") {
            case .success(let reply):
                if reply.status == 401 || reply.status == 403 {
                    throw .credentialsRefused("auth/me answered \(reply.status) \(reply.errorCodeAndMessage.1)")
                }
                if reply.status == 404 {
                    // A path problem, not a passing fault: retrying cannot help.
                    throw .wrongEndpoint("auth/me answered 404 Not Found; send.endpoint must be the API's base URL, ending in /api/v2/ (such as https://portal.mobtexting.com/api/v2/)")
                }
                if reply.status == 429 { await lookupLimiter.pause(for: reply.retryAfter ?? 1); continue }
                if (200..<300).contains(reply.status) {
                    guard reply.json != nil else { throw .credentialsRefused("auth/me did not answer JSON (a login page?)") }
                    return (ContinuousClock.now - started).seconds
                }
                last = "auth/me answered \(reply.status)"
            case .failure(let f):
                last = f.message
            }
            await backoff(attempt: attempt, retryAfter: nil)
        }
        throw .unreachable(last)
    }

    // MARK: - Batches

    struct Outcome: Sendable {
        var submitted = 0
        var failed = 0
        /// 401/403 in the middle of a job: the rest was not sent.
        var credentialsRefused = false
        /// SIGINT/SIGTERM: the job stopped between requests and resumes on the next start.
        var interrupted = false
        /// Rows written to batch files as failed with no request behind them (`NOT_SENT`,
        /// `LEDGER`): the ledger has no answer for them.
        var unrecorded = 0
    }

    /// Sends every row of the queue not yet settled in the ledger and writes
    /// `batches/batch-NNNN.csv` for each batch.
    /// - Throws: `ReportError` when a batch file cannot be written; `LedgerError` when the
    ///   ledger cannot record an intent (nothing more is sent then).
    func run(queue: SendQueueReader, outputs: JobOutputs) async throws -> Outcome {
        var outcome = Outcome()
        var settled = try ledger?.finalOutcomes(jobID: jobID) ?? [:]
        var inDoubt = try ledger?.inDoubtRequests(jobID: jobID) ?? []
        while let rows = queue.nextBatch() {
            if stop.requested { outcome.interrupted = true; break }
            let batch = rows[0].batch
            // A request of an earlier run that was never answered: ask the provider first.
            for request in inDoubt where request.batch == batch {
                try await resolve(request, rows: rows, into: &settled)
                if stop.requested { outcome.interrupted = true; return outcome }
            }
            inDoubt.removeAll { $0.batch == batch }
            var results = [RowResult?](repeating: nil, count: rows.count)
            var open: [Int] = []
            for (i, r) in rows.enumerated() {
                if let known = settled[r.row], known.submitted || known.isFinalFailure {
                    results[i] = RowResult(known)
                } else {
                    open.append(i)
                }
            }
            if !open.isEmpty {
                // Rows an earlier run failed count as in flight again, not failed, while re-sent.
                let retrying = Set(open.compactMap { settled[rows[$0].row] != nil ? rows[$0].row : nil })
                let sent = outcome.credentialsRefused ? open.map { _ in Sender.notSent } : await send(batch: open.map { rows[$0] }, retrying: retrying)
                for (i, r) in zip(open, sent) { results[i] = r }
            }
            if let error = trouble.withLock({ $0 }) { throw error }
            if stop.requested && results.contains(where: { $0?.errorCode == .interrupted }) {
                outcome.interrupted = true
                break
            }
            for r in results {
                if r!.submitted { outcome.submitted += 1 } else { outcome.failed += 1 }
                if r!.errorCode?.isUnrecorded == true { outcome.unrecorded += 1 }
                if r!.httpStatus == 401 || r!.httpStatus == 403 { outcome.credentialsRefused = true }
            }
            progress.batchDone()
            try Sender.writeBatch(batch, rows, results.map { $0! }, outputs)
        }
        return outcome
    }

    /// Looks up the rows of an unanswered request of an earlier run and records the answer.
    private func resolve(_ request: (id: Int64, batch: Int, rows: [Int]), rows: [QueuedRow], into settled: inout [Int: RequestOutcome]) async throws {
        let byRow = Dictionary(rows.map { ($0.row, $0) }, uniquingKeysWith: { a, _ in a })
        let members = request.rows.compactMap { byRow[$0] }
        guard !members.isEmpty else {
            try ledger?.recordAnswer(requestID: request.id, httpStatus: nil, outcomes: [])
            return
        }
        guard let found = await lookUp(members.map(custom)) else {
            if stop.requested { return }  // stays in doubt; the next run asks again
            throw SendError.unreachable("cannot confirm which rows of an unanswered request the provider accepted")
        }
        var outcomes: [RequestOutcome] = []
        var digests: [(hi: UInt64, lo: UInt64)] = []
        for r in members {
            if let id = found[custom(r)] {
                let o = RequestOutcome(row: r.row, submitted: true, messageId: id, httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1)
                outcomes.append(o)
                settled[r.row] = o
                digests.append((r.digest.high, r.digest.low))
            }
        }
        try ledger?.recordAnswer(requestID: request.id, httpStatus: nil, outcomes: outcomes, sent: (jobID, digests, clock))
    }

    /// Writes the batch files of a job that sends nothing now (the provider refused it or
    /// cannot be reached): rows the ledger has an answer for keep it (a resumed job's accepted
    /// rows stay submitted), rows of unanswered requests are in doubt, the rest `NOT_SENT`.
    static func writeUnsent(queue: SendQueueReader, outputs: JobOutputs, reason: String,
                            settled: [Int: RequestOutcome] = [:], inDoubt: Set<Int> = []) throws(ReportError) -> Outcome {
        var outcome = Outcome()
        while let rows = queue.nextBatch() {
            let results = rows.map { r -> RowResult in
                if let known = settled[r.row] { return RowResult(known) }
                if inDoubt.contains(r.row) { return Sender.inDoubt }
                return RowResult(submitted: false, errorCode: .notSent, errorMessage: reason)
            }
            for r in results {
                if r.submitted { outcome.submitted += 1 } else { outcome.failed += 1 }
                if r.errorCode == .notSent { outcome.unrecorded += 1 }
            }
            try writeBatch(rows[0].batch, rows, results, outputs)
        }
        return outcome
    }

    static let inDoubt = RowResult(submitted: false, errorCode: .inDoubt, errorMessage: "no answer, and the provider could not confirm whether it accepted the row; not resent to avoid a double send")

    static let notSent = RowResult(submitted: false, errorCode: .notSent, errorMessage: "not sent: the provider refused the credentials earlier in the job")

    /// Sends one batch: requests by product and time, `concurrency` at a time.
    private func send(batch rows: [QueuedRow], retrying: Set<Int>) async -> [RowResult] {
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for (i, r) in rows.enumerated() {
            let key = "\(r.product)|\(r.scheduledAt)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(i)
        }
        var requests: [[Int]] = []
        for key in order {
            let members = groups[key]!
            stride(from: 0, to: members.count, by: config.nodesPerRequest).forEach {
                requests.append(Array(members[$0..<min($0 + config.nodesPerRequest, members.count)]))
            }
        }
        var results = [RowResult](repeating: RowResult(submitted: false), count: rows.count)
        await withTaskGroup(of: [(Int, RowResult)].self) { group in
            var next = 0
            func launch() {
                let indices = requests[next]
                let nodes = indices.map { rows[$0] }
                next += 1
                group.addTask { zip(indices, await self.send(request: nodes, retrying: retrying)).map { ($0, $1) } }
            }
            while next < requests.count && next < config.concurrency { launch() }
            while let done = await group.next() {
                for (i, r) in done { results[i] = r }
                if next < requests.count { launch() }
            }
        }
        return results
    }

    private func custom(_ r: QueuedRow) -> String { "\(jobID):\(r.row)" }

    /// One request's rows to their results, through retries and in-doubt lookups.
    private func send(request rows: [QueuedRow], retrying: Set<Int>) async -> [RowResult] {
        var results = [RowResult?](repeating: nil, count: rows.count)
        var attempts = [Int](repeating: 0, count: rows.count)
        var pending = Array(rows.indices)
        var lastStatus: Int? = nil
        var lastError: (RowErrorCode, String) = (.noAnswer, "no answer from the provider")
        var attempt = 0
        func finish(_ i: Int, _ r: RowResult) {
            var r = r
            r.attempts = attempts[i]
            results[i] = r
        }
        // Rows settled by this attempt, recorded in the ledger as its answer.
        var answered: [Int] = []
        func settle(_ i: Int, _ r: RowResult) {
            finish(i, r)
            answered.append(i)
        }
        func stopped() -> [RowResult] {
            for i in pending { finish(i, RowResult(submitted: false, errorCode: .interrupted, errorMessage: "stopped by a signal; resumes on the next start")) }
            return results.map { $0! }
        }
        while !pending.isEmpty && attempt < config.maxAttempts {
            if stop.requested { return stopped() }
            attempt += 1
            await limiter.acquire()
            // A signal may have come while this request waited for its turn.
            if stop.requested { return stopped() }
            if attempt > 1 { progress.retried(); metrics.retries.increment() }
            for i in pending { attempts[i] += 1 }
            let batch = rows[pending[0]].batch
            var requestID: Int64? = nil
            if let ledger {
                do {
                    let numbers = pending.map { rows[$0].row }
                    requestID = try ledger.recordIntent(jobID: jobID, batch: batch, rows: numbers, retrying: numbers.filter(retrying.contains))
                } catch {
                    // Never send what could not be recorded first.
                    trouble.withLock { $0 = $0 ?? error }
                    for i in pending { finish(i, RowResult(submitted: false, errorCode: .ledger, errorMessage: "not sent: \(error.message)")) }
                    return results.map { $0! }
                }
            }
            answered.removeAll()
            var stillInDoubt = false
            var inDoubtRows = 0
            let body = RequestBody.sendJSON(pending.map { rows[$0] }, customs: pending.map { custom(rows[$0]) })
            defer {
                if let requestID, !stillInDoubt { record(requestID, lastStatus, answered.map { (rows[$0], results[$0]!) }) }
                progress.settled(submitted: answered.filter { results[$0]!.submitted }.count,
                                 failed: answered.filter { !results[$0]!.submitted }.count, inDoubt: inDoubtRows)
            }
            let started = ContinuousClock.now
            let answer = await client.postJSON("sms/send/json", body: body)
            progress.answered(seconds: (ContinuousClock.now - started).seconds)
            switch answer {
            case .success(let reply):
                lastStatus = reply.status
                if (200..<300).contains(reply.status) && reply.bodySaysOK {
                    let ids = RequestBody.messageIDs(reply)
                    let group = RequestBody.groupID(reply)
                    for i in pending {
                        if let id = ids[custom(rows[i])] {
                            settle(i, RowResult(submitted: true, messageId: id, httpStatus: reply.status, groupId: group))
                        } else {
                            settle(i, RowResult(submitted: false, httpStatus: reply.status, errorCode: .noResult, errorMessage: "the provider returned no result for this row"))
                        }
                    }
                    pending = []
                } else if reply.status == 429 {
                    await limiter.pause(for: reply.retryAfter ?? 1)
                    lastError = (.provider(reply.errorCodeAndMessage.0), reply.errorCodeAndMessage.1)
                } else if reply.status >= 500 || (200..<300).contains(reply.status) {
                    lastError = (.provider(reply.errorCodeAndMessage.0), reply.errorCodeAndMessage.1)
                    if attempt < config.maxAttempts { await backoff(attempt: attempt, retryAfter: reply.retryAfter) }
                } else if reply.status == 422, let bad = finalRows(reply, pending, settle), !bad.isEmpty {
                    // Only the named rows are final; the rest go again in a new request.
                    pending.removeAll { bad.contains($0) }
                    attempt -= 1
                } else {
                    let (code, message) = reply.errorCodeAndMessage
                    for i in pending { settle(i, RowResult(submitted: false, httpStatus: reply.status, errorCode: .provider(code), errorMessage: message)) }
                    pending = []
                }
            case .failure(let failure):
                lastStatus = nil
                lastError = (.noAnswer, failure.message)
                if failure.inDoubt {
                    // The provider may have accepted the rows: ask before sending again.
                    let found = await lookUp(pending.map { custom(rows[$0]) })
                    guard let found else {
                        // The intent stays unanswered: the next run asks again before sending.
                        stillInDoubt = true
                        inDoubtRows = pending.count
                        for i in pending { finish(i, Sender.inDoubt) }
                        pending = []
                        break
                    }
                    for i in pending {
                        if let id = found[custom(rows[i])] { settle(i, RowResult(submitted: true, messageId: id, httpStatus: 200)) }
                    }
                    pending.removeAll { results[$0] != nil }
                }
                if !pending.isEmpty && attempt < config.maxAttempts { await backoff(attempt: attempt, retryAfter: nil) }
            }
            // The last attempt: rows still open failed, and the ledger records it with this
            // attempt's answer (a later run sends them again: 5xx and silence are not final).
            if attempt >= config.maxAttempts {
                for i in pending {
                    settle(i, RowResult(submitted: false, httpStatus: lastStatus, errorCode: lastError.0, errorMessage: "gave up after \(attempts[i]) attempts: \(lastError.1)"))
                }
                pending = []
            }
        }
        return results.map { $0! }
    }

    /// Records an attempt's answer: the rows it settled, and the accepted ones' digests for
    /// the repetition window, in one transaction.
    private func record(_ requestID: Int64, _ status: Int?, _ settled: [(QueuedRow, RowResult)]) {
        guard let ledger else { return }
        let outcomes = settled.map { r, o in
            var outcome = RequestOutcome(row: r.row, submitted: o.submitted, messageId: o.messageId, httpStatus: o.httpStatus,
                                         errorCode: o.errorCode?.text ?? "", errorMessage: o.errorMessage, attempts: o.attempts)
            outcome.groupId = o.groupId
            return outcome
        }
        let digests = settled.filter { $0.1.submitted }.map { (hi: $0.0.digest.high, lo: $0.0.digest.low) }
        do {
            try ledger.recordAnswer(requestID: requestID, httpStatus: status, outcomes: outcomes, sent: (jobID, digests, clock))
        } catch {
            trouble.withLock { $0 = $0 ?? error }
        }
    }

    /// Marks the rows a 422 names as failed with the provider's code and message; returns them.
    private func finalRows(_ reply: HTTPReply, _ pending: [Int], _ finish: (Int, RowResult) -> Void) -> Set<Int>? {
        guard let named = RequestBody.invalidNodes(reply) else { return nil }
        var bad = Set<Int>()
        for (position, code, message) in named where position < pending.count && !bad.contains(pending[position]) {
            bad.insert(pending[position])
            finish(pending[position], RowResult(submitted: false, httpStatus: 422, errorCode: .provider(code), errorMessage: message))
        }
        return bad
    }

    /// Finds which customs the provider has accepted: custom → message id. A request is
    /// accepted or refused as one group, so two lookups settle it: the first row (and then
    /// its whole group, by `group_id`) and, when the first is unknown, the last row. Only if
    /// those disagree is every row asked for one by one. nil when the provider cannot be
    /// asked, or a signal asks to stop: the rows stay in doubt for the next run.
    private func lookUp(_ customs: [String]) async -> [String: String]? {
        metrics.inDoubtLookups.increment()
        var found: [String: String] = [:]
        guard let first = await status(["cid": customs[0]]) else { return nil }
        if let hit = first.first(where: { $0.custom == customs[0] }) {
            found[hit.custom] = hit.id
            if let group = hit.group, customs.count > 1 {
                guard let members = await status(["group_id": group]) else { return nil }
                for m in members { found[m.custom] = m.id }
            }
        } else if customs.count > 1 {
            guard let last = await status(["cid": customs[customs.count - 1]]) else { return nil }
            if !last.contains(where: { $0.custom == customs[customs.count - 1] }) { return [:] }
        }
        for c in customs.dropFirst() where found[c] == nil {
            guard let hits = await status(["cid": c]) else { return nil }
            if let hit = hits.first(where: { $0.custom == c }) { found[c] = hit.id }
        }
        return found
    }

    private struct StatusEntry { let id: String; let custom: String; let group: String? }

    /// `GET sms/status` with every page; nil when it cannot be answered after retries.
    private func status(_ selector: [String: String]) async -> [StatusEntry]? {
        var entries: [StatusEntry] = []
        var page = 1
        var lastPage = 1
        var failures = 0
        while page <= lastPage {
            if stop.requested { return nil }
            await lookupLimiter.acquire()
            let query = selector.map { ($0.key, $0.value) } + [("page", String(page))]
            guard case .success(let reply) = await client.get("sms/status", query: query), (200..<300).contains(reply.status),
                  let json = reply.json
            else {
                failures += 1
                if failures >= config.maxAttempts { return nil }
                await backoff(attempt: failures, retryAfter: nil)
                continue
            }
            for item in (json["data"] as? [[String: Any]]) ?? [] {
                entries.append(StatusEntry(id: "\(item["id"] ?? "")", custom: "\(item["customid"] ?? "")", group: item["group_id"] as? String))
            }
            lastPage = ((json["meta"] as? [String: Any])?["last_page"] as? Int) ?? 1
            page += 1
        }
        return entries
    }

    /// Exponential backoff with full jitter: up to 0.25 s · 2^(attempt-1), at most 30 s, or
    /// the provider's Retry-After when it gives one.
    private func backoff(attempt: Int, retryAfter: Double?) async {
        await time.sleep(seconds: retryAfter ?? jitter.withLock { Backoff.seconds(attempt: attempt, using: &$0) })
    }

    // MARK: - Result files

    private static func writeBatch(_ number: Int, _ rows: [QueuedRow], _ results: [RowResult], _ outputs: JobOutputs) throws(ReportError) {
        var file = try outputs.csv(JobOutputs.batchName(number), header: outputs.batchHeader)
        for (r, result) in zip(rows, results) {
            let scheduled = r.scheduledAt != 0 ? UTCTime.isoBytes(r.scheduledAt) : []
            r.sender.withUnsafeBufferPointer { sender in
                Array(r.product.utf8).withUnsafeBufferPointer { product in
                    scheduled.withUnsafeBufferPointer { time in
                        r.message.withUnsafeBufferPointer { message in
                            BatchRow.write(&file, row: r.row, recipient: r.recipient, sender: sender, product: product, result: result,
                                           segments: r.segments, encoding: r.encoding, scheduled: time,
                                           message: outputs.format.includeMessage ? message : nil)
                        }
                    }
                }
            }
            try file.endRow()
        }
        try file.commit()
    }
}
