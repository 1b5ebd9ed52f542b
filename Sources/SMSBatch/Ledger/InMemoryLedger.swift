import Foundation
import Synchronization

/// The ledger in memory, for one process and its lifetime: the same contract as
/// `SQLiteLedger` (answers, counts, merge rules, locks) without durability. Tests use it
/// where no file is needed; it shows that a ledger backend is one type, with nothing in
/// the pipeline or the send stage to change.
public final class InMemoryLedger: Ledger {
    public let path: String

    private struct Request {
        var jobID: String
        var batch: Int
        var rows: [Int]
        var answered = false
        var outcomes: [RequestOutcome] = []
    }

    private struct Message {
        var batch: Int
        enum State { case inFlight, submitted, failed }
        var state: State
        var messageID: String?
        var groupID: String?
        var delivery: RowDelivery?
    }

    private struct State {
        /// Jobs with their insertion order (ties of `startedAt` list the later first).
        var jobs: [String: (record: JobRecord, order: Int)] = [:]
        var order = 0
        var plans: [String: [BatchRecord]] = [:]
        var requests: [Int64: Request] = [:]
        var nextRequest: Int64 = 1
        var messages: [String: [Int: Message]] = [:]
        var sent: [(hi: UInt64, lo: UInt64, at: Int64, job: String)] = []
        var deciding = false
        var heldJobs = Set<String>()
        /// Message id → job and row, for delivery reports.
        var byMessageID: [String: (job: String, row: Int)] = [:]
        var unmatched: [(report: DeliveryReport, receivedAt: Int64)] = []
    }

    private let state = Locked(State())

    public init(name: String = ":memory:") { path = name }

    private func constraint(_ what: String) -> LedgerError { LedgerError(path: path, code: 19, message: what) }

    // MARK: - Jobs

    public func createJob(_ job: JobRecord) throws(LedgerError) {
        let made = state.withLock { s -> Bool in
            guard s.jobs[job.id] == nil else { return false }
            s.order += 1
            s.jobs[job.id] = (job, s.order)
            return true
        }
        if !made { throw constraint("UNIQUE constraint failed: jobs.id") }
    }

    public func updateJob(id: String, status: JobStatus, counts: JobCounts?, outputDir: String?, finishedAt: Int64?,
                          destination: String?) throws(LedgerError) {
        let found = state.withLock { s -> Bool in
            guard var j = s.jobs[id]?.record else { return false }
            j.status = status
            if let c = counts {
                (j.rows, j.valid, j.invalid, j.duplicates) = (c.rows, c.valid, c.invalid, c.duplicates)
                (j.toSend, j.submitted, j.failed, j.inDoubt) = (c.toSend, c.submitted, c.failed, c.inDoubt)
            }
            if let outputDir { j.outputDir = outputDir }
            if let finishedAt { j.finishedAt = finishedAt }
            if let destination { j.destination = destination }
            s.jobs[id]!.record = j
            return true
        }
        if !found { throw LedgerError(path: path, code: 0, message: "no job \(id)") }
    }

    public func recordFileLocation(jobID: String, path file: String) throws(LedgerError) {
        state.withLock { s in s.jobs[jobID]?.record.fileNow = file }
    }

    public func job(id: String) throws(LedgerError) -> JobRecord? { state.withLock { $0.jobs[id]?.record } }

    private func newestFirst(_ s: State) -> [JobRecord] {
        s.jobs.values.sorted { ($0.record.startedAt, $0.order) > ($1.record.startedAt, $1.order) }.map(\.record)
    }

    public func jobs(limit: Int) throws(LedgerError) -> [JobRecord] { state.withLock { Array(newestFirst($0).prefix(limit)) } }

    public func latestJob(sha256: String) throws(LedgerError) -> JobRecord? {
        state.withLock { s in newestFirst(s).first { $0.sha256 == sha256 && $0.repeatOf == nil } }
    }

    // MARK: - Plan and counts

    public func recordPlan(jobID: String, _ batches: [BatchRecord]) throws(LedgerError) {
        state.withLock { $0.plans[jobID] = batches }
    }

    public func plan(jobID: String) throws(LedgerError) -> [BatchRecord] { state.withLock { $0.plans[jobID] ?? [] } }

    public func sendCounts(jobID: String) throws(LedgerError) -> (total: SendCounts, batches: [Int: SendCounts]) {
        state.withLock { s in
            var batches: [Int: SendCounts] = [:]
            for m in (s.messages[jobID] ?? [:]).values {
                switch m.state {
                case .submitted: batches[m.batch, default: SendCounts()].submitted += 1
                case .failed: batches[m.batch, default: SendCounts()].failed += 1
                case .inFlight: break
                }
            }
            for r in s.requests.values where r.jobID == jobID {
                batches[r.batch, default: SendCounts()].requests += 1
                if !r.answered { batches[r.batch, default: SendCounts()].inDoubt += r.rows.count }
            }
            return (SendCounts(sum: batches.values), batches)
        }
    }

    // MARK: - Requests

    public func recordIntent(jobID: String, batch: Int, rows: [Int], retrying: [Int]) throws(LedgerError) -> Int64 {
        let id = state.withLock { s -> Int64? in
            guard s.jobs[jobID] != nil else { return nil }
            for row in retrying where s.messages[jobID]?[row]?.state == .failed { s.messages[jobID]![row]!.state = .inFlight }
            let id = s.nextRequest
            s.nextRequest += 1
            s.requests[id] = Request(jobID: jobID, batch: batch, rows: rows)
            return id
        }
        guard let id else { throw constraint("FOREIGN KEY constraint failed") }
        return id
    }

    public func recordAnswer(requestID: Int64, httpStatus: Int?, outcomes: [RequestOutcome],
                             sent: (jobID: String, digests: [(hi: UInt64, lo: UInt64)], at: Int64)?) throws(LedgerError) {
        let found = state.withLock { s -> Bool in
            guard var r = s.requests[requestID] else { return false }
            r.answered = true
            r.outcomes = outcomes
            s.requests[requestID] = r
            for o in outcomes {
                if s.messages[r.jobID]?[o.row]?.state == .submitted { continue }
                s.messages[r.jobID, default: [:]][o.row] = Message(batch: r.batch, state: o.submitted ? .submitted : .failed,
                                                                   messageID: o.messageId.isEmpty ? nil : o.messageId, groupID: o.groupId)
                if o.submitted && !o.messageId.isEmpty { s.byMessageID[o.messageId] = (r.jobID, o.row) }
            }
            if let sent { for d in sent.digests { s.sent.append((d.hi, d.lo, sent.at, sent.jobID)) } }
            return true
        }
        if !found { throw LedgerError(path: path, code: 0, message: "no request \(requestID)") }
    }

    public func inDoubtRequests(jobID: String) throws(LedgerError) -> [(id: Int64, batch: Int, rows: [Int])] {
        state.withLock { s in
            s.requests.filter { $0.value.jobID == jobID && !$0.value.answered }.sorted { $0.key < $1.key }
                .map { (id: $0.key, batch: $0.value.batch, rows: $0.value.rows) }
        }
    }

    public func finalOutcomes(jobID: String) throws(LedgerError) -> [Int: RequestOutcome] {
        state.withLock { s in
            var merged: [Int: RequestOutcome] = [:]
            for (_, r) in s.requests.sorted(by: { $0.key < $1.key }) where r.jobID == jobID && r.answered {
                for o in r.outcomes {
                    if let earlier = merged[o.row], earlier.submitted, !o.submitted { continue }
                    merged[o.row] = o
                }
            }
            return merged
        }
    }

    // MARK: - Delivery reports

    public func recordDeliveries(_ reports: [DeliveryReport], receivedAt: Int64) throws(LedgerError) -> DeliveryRecording {
        state.withLock { s in
            var out = DeliveryRecording()
            for report in reports {
                guard report.isFinal else { out.notFinal += 1; continue }
                if !Self.apply(&s, report, into: &out) {
                    out.unmatched += 1
                    s.unmatched.append((report, receivedAt))
                }
            }
            return out
        }
    }

    public func matchUnmatched() throws(LedgerError) -> DeliveryRecording {
        state.withLock { s in
            var out = DeliveryRecording()
            let waiting = s.unmatched
            s.unmatched = waiting.filter { !Self.apply(&s, $0.report, into: &out) }
            return out
        }
    }

    public func unmatchedCount() throws(LedgerError) -> Int { state.withLock { $0.unmatched.count } }

    private static func apply(_ s: inout State, _ report: DeliveryReport, into out: inout DeliveryRecording) -> Bool {
        var found = report.messageId.isEmpty ? nil : s.byMessageID[report.messageId]
        if found == nil, let (job, row) = report.customRow, s.messages[job]?[row]?.state == .submitted { found = (job, row) }
        guard let (job, row) = found, let message = s.messages[job]?[row] else { return false }
        if let earlier = message.delivery {
            if earlier.status == report.status { out.repeated += 1 } else {
                out.conflicts.append("\(job):\(row) is \(earlier.status); a later report says \(report.status) (kept \(earlier.status))")
            }
            return true
        }
        s.messages[job]![row]!.delivery = RowDelivery(status: report.status, at: report.at)
        out.recorded += 1
        out.jobs.insert(job)
        return true
    }

    public func awaitingDelivery(jobID: String) throws(LedgerError) -> [AwaitingRow] {
        state.withLock { s in
            (s.messages[jobID] ?? [:]).filter { $0.value.state == .submitted && $0.value.delivery == nil }.sorted { $0.key < $1.key }
                .map { AwaitingRow(row: $0.key, messageId: $0.value.messageID, groupId: $0.value.groupID) }
        }
    }

    public func awaitingLookups(jobID: String) throws(LedgerError) -> (groups: [String], rows: [Int]) {
        let awaiting = try awaitingDelivery(jobID: jobID)
        return (Array(Set(awaiting.compactMap(\.groupId))).sorted(), awaiting.filter { $0.groupId == nil }.map(\.row))
    }

    public func deliveries(jobID: String, batch: Int?) throws(LedgerError) -> [Int: RowDelivery] {
        state.withLock { s in (s.messages[jobID] ?? [:]).filter { batch == nil || $0.value.batch == batch }.compactMapValues(\.delivery) }
    }

    public func failedDeliveries(jobID: String) throws(LedgerError) -> [Int: RowDelivery] {
        try deliveries(jobID: jobID, batch: nil).filter { $0.value.outcome.isFailure }
    }

    public func finalDeliveryCounts(jobID: String) throws(LedgerError) -> [Int: [String: Int]] {
        state.withLock { s in
            var out: [Int: [String: Int]] = [:]
            for m in (s.messages[jobID] ?? [:]).values { if let d = m.delivery { out[m.batch, default: [:]][d.status, default: 0] += 1 } }
            return out
        }
    }

    public func deliveryCounts(jobID: String) throws(LedgerError) -> DeliveryCounts {
        state.withLock { s in
            var out = DeliveryCounts()
            for m in (s.messages[jobID] ?? [:]).values where m.state == .submitted {
                out.add(batch: m.batch, status: m.delivery?.status ?? DeliveryStatus.awaiting, count: 1)
            }
            return out
        }
    }

    public func expireDeliveries(jobID: String, at: Int64) throws(LedgerError) -> Int {
        state.withLock { s in
            var n = 0
            for (row, m) in s.messages[jobID] ?? [:] where m.state == .submitted && m.delivery == nil {
                s.messages[jobID]![row]!.delivery = RowDelivery(status: DeliveryStatus.expiredUnknown, at: nil)
                n += 1
            }
            return n
        }
    }

    public func jobsAwaitingDelivery() throws(LedgerError) -> [String] {
        state.withLock { s in
            newestFirst(s).reversed().map(\.id).filter { job in
                (s.messages[job] ?? [:]).values.contains { $0.state == .submitted && $0.delivery == nil }
            }
        }
    }

    // MARK: - Sent index

    public func sentSince(_ since: Int64, excludingJob: String) throws(LedgerError) -> [(hi: UInt64, lo: UInt64)] {
        state.withLock { s in s.sent.filter { $0.at >= since && $0.job != excludingJob }.map { (hi: $0.hi, lo: $0.lo) } }
    }

    public func prune(sentBefore: Int64) throws(LedgerError) {
        state.withLock { s in s.sent.removeAll { $0.at < sentBefore } }
    }

    // MARK: - Locks

    private final class Hold: LedgerLock {
        private let onRelease: Locked<(@Sendable () -> Void)?>
        init(_ release: @escaping @Sendable () -> Void) { onRelease = Locked(release) }
        func release() { onRelease.withLock { $0?(); $0 = nil } }
    }

    public func decisionLock() async -> LedgerLock? {
        while !state.withLock({ s in s.deciding ? false : { s.deciding = true; return true }() }) {
            try? await Task.sleep(for: .milliseconds(1))
        }
        return Hold { [self] in state.withLock { $0.deciding = false } }
    }

    public func holdJob(_ id: String, outputDir: String) -> LedgerLock? {
        guard state.withLock({ $0.heldJobs.insert(id).inserted }) else { return nil }
        return Hold { [self] in _ = state.withLock { $0.heldJobs.remove(id) } }
    }

    public func isHeld(_ id: String, outputDir: String?) -> Bool { state.withLock { $0.heldJobs.contains(id) } }

    public func releaseJob(_ lock: LedgerLock, outputDir: String) async { lock.release() }
}
