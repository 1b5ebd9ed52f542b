import Foundation

/// `drain` and `watch` (SPEC §10): claim files from inbox/, run each as a job, move it to
/// done/ or failed/. Files left in processing/ by a dead process are resumed first.
public final class SpoolRunner {
    let spool: Spool
    let runner: JobRunner
    let config: PipelineConfig
    let progress: ProgressReporter
    /// Called after each job with its result (the command prints one line per job).
    public var onJob: ((JobResult) -> Void)?

    /// Raised: no new file is claimed, and the job in progress stops.
    let stop: StopSignal
    let options: RunOptions
    let sandbox: BuiltInSandbox?

    public init(config: PipelineConfig, options: RunOptions, progress: ProgressReporter, sandbox: BuiltInSandbox? = nil,
                stop: StopSignal = .process) throws(SpoolError) {
        self.stop = stop
        self.config = config
        self.progress = progress
        spool = try Spool(root: config.watch.root)
        var options = options
        options.outDir = nil
        self.options = options
        self.sandbox = sandbox
        runner = JobRunner(config: config, options: options, progress: progress, sandbox: sandbox, stop: stop)
    }

    /// Cron mode: every claimable file now in the inbox, then exit with the worst job's code.
    /// - Throws: `SpoolError.busy` (exit 75) when another drain or a watch holds the spool.
    public func drain() async throws -> ExitStatus {
        let lock = try spool.lock(exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        Shutdown.install()
        countInbox()
        try runner.prepare()
        var worst = ExitStatus.ok
        for file in spool.orphans() where !stop.requested {
            worst = max(worst, await process(spool.path("processing", file)))
        }
        for c in spool.candidates() where !stop.requested {
            // A file that changed within `settle`, or that some process still has open for
            // writing, is not complete yet (SPEC §10).
            guard await settled(c) else {
                progress.warning(spool.path("inbox", c.name), "still changing after \(10 * config.watch.settle)s; left for the next drain")
                continue
            }
            if Spool.hasWriter(spool.path("inbox", c.name)) == true { continue }
            guard let claimed = spool.claim(c.name) else { continue }
            options.metrics.filesClaimed.increment()
            worst = max(worst, await process(claimed))
        }
        // Cron's interval is the poll interval: each drain pulls what has arrived.
        if !stop.requested { await pullDeliveries() }
        return worst
    }

    /// Pulls delivery reports for every job still awaiting them (SPEC §11) and rewrites their
    /// result files. A failure is a warning: the next pull asks again.
    func pullDeliveries() async {
        guard !options.dryRun else { return }
        do {
            let ledger = try runner.openLedger()
            guard !(try ledger.jobsAwaitingDelivery()).isEmpty else { return }
            let puller = try DeliveryPuller.make(config: config, ledger: ledger, options: options, progress: progress, sandbox: sandbox, stop: stop)
            let now = options.now ?? Int64(Date().timeIntervalSince1970)
            let result = try await puller.pull(now: now)
            let r = result.recording
            progress.note("delivery reports", "\(r.recorded) final statuses recorded for \(result.jobs.count) jobs (\(result.requests) lookups)"
                + (result.expiredJobs.isEmpty ? "" : "; \(result.expiredJobs.count) jobs past dlr.stop_after: rows without a report are EXPIRED-UNKNOWN"))
            for c in r.conflicts.prefix(10) { progress.warning("delivery reports", c) }
            for (job, why) in result.failures { progress.warning(job, "delivery reports not pulled: \(why); asked again at the next pull") }
            if let why = result.credentialsRefused { progress.warning("delivery reports", "not pulled: the provider refused the credentials: \(why)") }
        } catch let error as SendError {
            progress.warning("delivery reports", "not pulled: \(error.message)")
        } catch {
            progress.warning("delivery reports", "not pulled: \(error)")
        }
    }

    /// Waits until the file has not changed for `watch.settle` (judged by its mtime, then by
    /// looking again); false when it keeps changing for ten times that long.
    private func settled(_ c: Spool.Candidate) async -> Bool {
        let settle = Double(config.watch.settle)
        var current = c
        var waited = 0.0
        while !stop.requested {
            let age = Date().timeIntervalSince1970 - current.mtime
            if age >= settle { return true }
            if waited >= 10 * settle { return false }
            let pause = min(settle - age, settle)
            try? await Task.sleep(for: .seconds(pause))
            waited += pause
            guard let now = spool.candidates().first(where: { $0.name == c.name }) else { return false }
            current = now
        }
        return false
    }

    /// Daemon mode: until SIGINT/SIGTERM.
    /// - Throws: `SpoolError.busy` (exit 75) when a drain holds the spool.
    public func watch() async throws -> ExitStatus {
        let lock = try spool.lock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        Shutdown.install()
        countInbox()
        try runner.prepare()
        let watcher = InboxWatcher(spool: spool, settle: Double(config.watch.settle))
        progress.note(spool.inbox, "watching (\(watcher.usesInotify ? "inotify" : "rescan only"), settle \(config.watch.settle)s)")
        var lastOrphanScan = -Double.infinity
        var lastPull = -Double.infinity
        let metrics = options.metrics
        metrics.setWatching(true)
        defer { metrics.setWatching(false) }
        while !stop.requested {
            metrics.beat()
            let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
            if now - lastPull >= Double(config.dlr.pollEvery) {
                lastPull = now
                await pullDeliveries()
            }
            if now - lastOrphanScan > 5 {
                lastOrphanScan = now
                for file in spool.orphans() where !stop.requested {
                    _ = await process(spool.path("processing", file))
                }
            }
            for name in watcher.ready(timeout: 0.5) where !stop.requested {
                guard let claimed = spool.claim(name) else { continue }
                metrics.filesClaimed.increment()
                _ = await process(claimed)
            }
        }
        progress.note(spool.inbox, "stopped")
        return .ok
    }

    /// `smsbatch_inbox_files` counts inbox/ when it is scraped (or written), never a stale
    /// value from before a long job.
    private func countInbox() {
        options.metrics.countInbox { [spool] in spool.candidates().count }
    }

    /// Runs one claimed file (held with flock so no other process takes it meanwhile) and
    /// files it away. Returns the job's exit status.
    func process(_ path: String) async -> ExitStatus {
        guard let hold = spool.hold(path) else { return .ok }
        defer { withExtendedLifetime(hold) {} }
        let name = (path as NSString).lastPathComponent
        do {
            let result = try await runner.run(path: path)
            onJob?(result)
            if result.interrupted { return result.exitStatus }
            let s = result.summary
            let filed: String
            if result.exitStatus == .ok {
                filed = spool.finish(path, failedReason: nil)
            } else {
                filed = spool.finish(path, failedReason: .object([
                    ("file", .string(name)), ("job", .string(s.job)), ("status", .string(s.status.rawValue)),
                    ("reject_reason", s.rejectReason.map { .string($0.rawValue) } ?? .null),
                    ("detail", .string(s.rejectDetail ?? s.warnings.last ?? "\(s.failed) rows could not be submitted")),
                    ("exit_code", .int(Int(result.exitStatus.rawValue))), ("outputs", .string(s.outputDir)),
                ]))
            }
            // `jobs` shows where the file is now; a dry run has no ledger entry.
            if !s.dryRun { try? runner.openLedger().recordFileLocation(jobID: s.job, path: filed) }
            return result.exitStatus
        } catch {
            progress.error(error.subject, error.problem)
            switch error {
            case .input, .configuredFile, .setting:
                spool.finish(path, failedReason: .object([
                    ("file", .string(name)), ("status", .string(JobStatus.failed.rawValue)), ("detail", .string(error.description)),
                    ("exit_code", .int(Int(error.exitStatus.rawValue))),
                ]))
            case .busy, .ledger, .report:
                break  // stays in processing/: taken up again on a later pass
            }
            return error.exitStatus
        }
    }
}
