import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchMetrics
import SMSBatchSandbox

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Process the files now, one job per file.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Write this job's outputs here instead of <watch.root>/outbox/<job id>/ (several files: a folder per job inside).")
    var out: String?

    @OptionGroup var job: JobOptions
    @OptionGroup var metricsFile: MetricsFileOption

    @Flag(help: "Print summary.json to stdout instead of the human summary.")
    var json = false

    @Option(help: "After sending, pull delivery reports for up to this long (30s, 2m) and show them.")
    var waitDlr: String?

    @Argument(help: "Recipient files: CSV, or any compressed or archived form of it.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE") }
        if let waitDlr, ConfigText.seconds(waitDlr) == nil {
            throw ValidationError("--wait-dlr: '\(waitDlr)' is not a duration like 30s or 2m")
        }
    }

    func run() async throws {
        let config = try common.loadConfig()
        var options = job.runOptions(now: common.parsedNow)
        let exporter = metricsFile.exporter()
        if let exporter { options.metrics = exporter.metrics }
        defer { metricsFile.write(exporter) }
        if !options.dryRun {
            Shutdown.install()
            // Sending with nothing configured is allowed (the sandbox) but never silent.
            if !common.configFound {
                printError("smsbatch: no ./pipeline.yaml: built-in defaults; sends to \(ProviderEndpoint.describe(config.send.endpoint, dryRun: false))")
            }
        }
        let sandbox = SandboxLauncher()
        let runner = JobRunner(config: config, options: options, progress: TerminalProgress(), sandbox: sandbox)
        // The plan goes out before sending starts; the outcome when the job ends.
        if !json { runner.onPlan = { say(HumanSummary.plan($0, config: config)) } }
        do { try runner.prepare() } catch {
            report(error)
            throw ExitCode(error.exitStatus.rawValue)
        }
        var worst = ExitStatus.ok
        for file in files where !StopSignal.process.requested {
            var outDir = out
            if let out, files.count > 1 { outDir = (out as NSString).appendingPathComponent((file as NSString).lastPathComponent) }
            do {
                let result = try await runner.run(path: file, outDir: outDir)
                if json {
                    say(result.summary.json.rendered(indent: 2))
                } else {
                    if result.summary.repeatOf != nil { say("job \(result.summary.job)  \(file)") }
                    say(HumanSummary.outcome(result.summary))
                }
                worst = max(worst, result.exitStatus)
                metricsFile.write(exporter)
                if let wait = waitDlr.flatMap({ ConfigText.seconds($0) }), wait > 0, result.summary.submitted > 0, !json {
                    await waitForDeliveries(result.summary, seconds: wait, config: config, options: options, sandbox: sandbox)
                }
            } catch {
                report(error)
                worst = max(worst, error.exitStatus)
            }
        }
        if worst != .ok { throw ExitCode(worst.rawValue) }
    }

    /// `--wait-dlr`: pulls the job's delivery reports until all are final or time is up.
    private func waitForDeliveries(_ summary: JobSummary, seconds: Int, config: PipelineConfig, options: RunOptions,
                                   sandbox: SandboxLauncher) async {
        do {
            let ledger = try LedgerStore.open(config)
            let puller = try DeliveryPuller.make(config: config, ledger: ledger, options: options, progress: TerminalProgress(), sandbox: sandbox)
            printError("smsbatch: waiting up to \(seconds) s for delivery reports of \(summary.job)")
            let now = options.now ?? Int64(Date().timeIntervalSince1970)
            _ = try await puller.pullUntilFinal(jobID: summary.job, timeout: Double(seconds), now: now)
            say("delivery: " + HumanSummary.deliveryLine(job: summary.job, try ledger.deliveryCounts(jobID: summary.job)))
        } catch let error as SendError {
            report(CommandError(subject: summary.job, problem: "delivery reports not pulled: \(error.message)", exitStatus: error.exitStatus))
        } catch {
            report(CommandError(subject: summary.job, problem: "delivery reports not pulled: \(error)", exitStatus: .ioError))
        }
    }
}
