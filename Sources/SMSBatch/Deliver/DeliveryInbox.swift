import Foundation

/// Records pushed delivery reports (SPEC §11) durably, many requests to one transaction
/// (group commit): each caller is answered once its reports are committed, so the webhook's
/// 200 means "recorded" and the provider's retry covers a crash before it. Every few seconds
/// it matches reports kept for unknown messages and rewrites the result files of the jobs
/// that got reports.
///
/// The ledger is called from the inbox's own thread, never from the server's event loops:
/// a commit waits for fsync.
public final class DeliveryInbox: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.

    public typealias Completion = @Sendable (Result<Void, LedgerError>) -> Void

    /// What the inbox has done since it started.
    public struct Totals: Sendable, Equatable {
        public var requests = 0
        public var reports = 0
        public var recording = DeliveryRecording()
        public var commits = 0
    }

    private let ledger: any Ledger
    private let config: PipelineConfig
    private let refreshEvery: Double
    private let now: @Sendable () -> Int64
    private let log: @Sendable (String) -> Void
    private let condition = NSCondition()
    private var pending: [(reports: [DeliveryReport], done: Completion)] = []
    private var touched = Set<String>()
    private var stopping = false
    private var finished = false
    private var totals = Totals()

    /// `refreshEvery`: seconds between rewrites of touched jobs' result files. `log` gets
    /// warnings (a report that disagrees with a recorded final status) and errors.
    public init(ledger: any Ledger, config: PipelineConfig, refreshEvery: Double = 10,
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.ledger = ledger
        self.config = config
        self.refreshEvery = refreshEvery
        self.now = now
        self.log = log
        // The thread holds the inbox until `stop()` ends it.
        let thread = Thread { self.run() }
        thread.name = "smsbatch-dlr-inbox"
        thread.start()
    }

    /// Queues `reports`; `done` runs (on the inbox's thread) once they are committed.
    public func submit(_ reports: [DeliveryReport], done: @escaping Completion) {
        condition.lock()
        if stopping {
            condition.unlock()
            done(.failure(LedgerError(path: ledger.path, code: 0, message: "shutting down")))
            return
        }
        pending.append((reports, done))
        condition.signal()
        condition.unlock()
    }

    public var snapshot: Totals {
        condition.lock()
        defer { condition.unlock() }
        return totals
    }

    /// Commits what is queued, rewrites the touched jobs' files and stops the thread.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        var lastRefresh = Date()
        while true {
            condition.lock()
            while pending.isEmpty && !stopping && Date().timeIntervalSince(lastRefresh) < refreshEvery {
                _ = condition.wait(until: lastRefresh.addingTimeInterval(refreshEvery))
            }
            let batch = pending
            pending = []
            let ending = stopping && batch.isEmpty
            condition.unlock()

            if !batch.isEmpty { commit(batch) }
            if ending || Date().timeIntervalSince(lastRefresh) >= refreshEvery {
                refresh()
                lastRefresh = Date()
            }
            if ending {
                condition.lock()
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    private func commit(_ batch: [(reports: [DeliveryReport], done: Completion)]) {
        let reports = batch.flatMap(\.reports)
        do {
            let recording = try ledger.recordDeliveries(reports, receivedAt: now())
            condition.lock()
            totals.requests += batch.count
            totals.reports += reports.count
            totals.commits += 1
            totals.recording.add(recording)
            touched.formUnion(recording.jobs)
            condition.unlock()
            for c in recording.conflicts { log("warning: \(c)") }
            for item in batch { item.done(.success(())) }
        } catch {
            log("\(error.subject): error: \(error.problem)")
            for item in batch { item.done(.failure(error)) }
        }
    }

    /// Matches reports kept for unknown messages, then rewrites the result files of every
    /// job that got a final status since the last refresh.
    private func refresh() {
        do {
            let matched = try ledger.matchUnmatched()
            condition.lock()
            totals.recording.recorded += matched.recorded
            totals.recording.unmatched -= matched.recorded
            touched.formUnion(matched.jobs)
            let jobs = touched
            touched = []
            condition.unlock()
            for id in jobs.sorted() {
                guard let job = try ledger.job(id: id) else { continue }
                do { try DeliveryOutputs.refresh(job: job, ledger: ledger, config: config, now: now()) } catch {
                    log("\(job.outputDir ?? id): error: delivery columns not written: \(error)")
                }
            }
        } catch {
            log("\(error.subject): error: \(error.problem)")
        }
    }
}
