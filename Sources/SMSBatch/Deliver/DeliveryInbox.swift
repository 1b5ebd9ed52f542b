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
    private var committerDone = false
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
        // Two threads, each holding the inbox until `stop()` ends it: commits never wait for
        // a rewrite of result files.
        let committer = Thread { self.commitLoop() }
        committer.name = "smsbatch-dlr-commit"
        committer.start()
        let refresher = Thread { self.refreshLoop() }
        refresher.name = "smsbatch-dlr-refresh"
        refresher.start()
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
        condition.broadcast()
        condition.unlock()
    }

    public var snapshot: Totals {
        condition.lock()
        defer { condition.unlock() }
        return totals
    }

    /// Commits what is queued, rewrites the touched jobs' files and stops both threads.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func commitLoop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopping { condition.wait() }
            let batch = pending
            pending = []
            let ending = stopping && batch.isEmpty
            if ending {
                committerDone = true
                condition.broadcast()
            }
            condition.unlock()
            if ending { return }
            commit(batch)
        }
    }

    private func refreshLoop() {
        var last = Date()
        while true {
            condition.lock()
            while !stopping && Date().timeIntervalSince(last) < refreshEvery {
                _ = condition.wait(until: last.addingTimeInterval(refreshEvery))
            }
            let ending = stopping
            while ending && !committerDone { condition.wait() }
            condition.unlock()
            refresh()
            last = Date()
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
    /// job that got a final status since the last refresh. A job still being sent (held by
    /// its process) or not published yet waits for a later refresh: its own process writes
    /// its files meanwhile, and refreshes them when it ends.
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
            var later = Set<String>()
            for id in jobs.sorted() {
                guard let job = try ledger.job(id: id) else { continue }
                if job.outputDir == nil || ledger.isHeld(id, outputDir: job.outputDir) {
                    later.insert(id)
                    continue
                }
                do { try DeliveryOutputs.refresh(job: job, ledger: ledger, config: config, now: now()) } catch {
                    log("\(job.outputDir ?? id): error: delivery columns not written: \(error)")
                }
            }
            if !later.isEmpty {
                condition.lock()
                touched.formUnion(later)
                condition.unlock()
            }
        } catch {
            log("\(error.subject): error: \(error.problem)")
        }
    }
}
