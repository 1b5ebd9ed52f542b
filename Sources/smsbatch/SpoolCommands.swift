import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchMetrics
import SMSBatchSandbox

/// Options of the commands that run jobs from the spool.
struct JobOptions: ParsableArguments {
    @Option(help: "Campaign kind for the caps: quick or bulk (default caps.kind).")
    var kind: String?

    @Option(help: "Product for rows with no product column or an empty cell (default validate.default_product).")
    var product: String?

    @Flag(help: "Everything but the network send.")
    var dryRun = false

    @Flag(help: "Process a file even if the ledger says the same content was already sent.")
    var force = false

    func validate() throws {
        if let kind, CampaignKind(rawValue: kind) == nil { throw ValidationError("--kind must be quick or bulk, not '\(kind)'") }
    }

    func runOptions(now: Int64?) -> RunOptions {
        var o = RunOptions()
        o.kind = kind.flatMap(CampaignKind.init(rawValue:))
        o.product = product
        o.dryRun = dryRun
        o.force = force
        o.now = now
        return o
    }
}

/// Runs a spool command, mapping its errors to exit codes. Says first which configuration,
/// spool and ledger it uses (a folder of its own creates them: never silently), then one
/// line per job on stdout.
/// `serve`: `watch --metrics`, the address to serve /metrics and /healthz on.
func runSpool(_ common: CommonOptions, _ job: JobOptions, _ metricsFile: MetricsFileOption, serve: ListenAddress? = nil,
              _ body: (SpoolRunner) async throws -> ExitStatus) async throws {
    let config = try common.loadConfig()
    let root = config.watch.root
    let spoolExisted = FileManager.default.fileExists(atPath: root)
    let ledgerExisted = config.ledgerExists
    let exporter = metricsFile.exporter(serve != nil)
    var options = job.runOptions(now: common.parsedNow)
    if let exporter { options.metrics = exporter.metrics }
    var server: MetricsServer?
    defer {
        server?.stop()
        metricsFile.write(exporter)
    }
    do {
        let runner = try SpoolRunner(config: config, options: options, progress: TerminalProgress(), sandbox: SandboxLauncher())
        runner.onJob = {
            say(HumanSummary.jobLine($0.summary))
            metricsFile.write(exporter)
        }
        printError("smsbatch: configuration \(common.configSource); spool \(root)\(spoolExisted ? "" : " (created now)"); "
            + "ledger \(config.ledgerLocation)\(ledgerExisted ? "" : " (new)"); sends to \(ProviderEndpoint.describe(config.send.endpoint, dryRun: job.dryRun))")
        if let serve, let exporter {
            let metrics = exporter.metrics
            do {
                server = try MetricsServer(listen: serve.host, port: serve.port, exporter: exporter) {
                    // A dry run never writes the ledger (nor creates it).
                    metrics.loopProblem() ?? (job.dryRun ? nil : LedgerStore.writeProblem(config))
                }
            } catch {
                report(CommandError(subject: "--metrics", problem: "cannot listen on \(serve.host) port \(serve.port): \(error)", exitStatus: .osError))
                throw ExitCode(ExitStatus.osError.rawValue)
            }
            // One line, at once: callers read it to learn the port.
            printError("smsbatch: metrics on http://\(serve.host):\(server!.port)/metrics (health: /healthz)")
        }
        let status = try await body(runner)
        if status != .ok { throw ExitCode(status.rawValue) }
    } catch let e as any Diagnosable {
        report(e)
        throw ExitCode(e.exitStatus.rawValue)
    }
}

struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Cron mode: process every file now in the inbox, then exit.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var job: JobOptions
    @OptionGroup var metricsFile: MetricsFileOption

    func run() async throws { try await runSpool(common, job, metricsFile) { try await $0.drain() } }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Daemon: watch the inbox and process files as they arrive, until SIGINT/SIGTERM.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var job: JobOptions
    @OptionGroup var metricsFile: MetricsFileOption

    @Option(help: "Serve Prometheus metrics and /healthz at HOST:PORT (127.0.0.1:9464; a bare port listens on 127.0.0.1; port 0: any free port, printed).")
    var metrics: String?

    func validate() throws {
        if let metrics, ListenAddress(metrics) == nil {
            throw ValidationError("--metrics: '\(metrics)' is not HOST:PORT like 127.0.0.1:9464")
        }
        // A daemon with --force would send again every repeat anyone drops, for as long as it runs.
        if job.force {
            throw ValidationError("--force is refused for watch: it would resend every repeated file dropped while it runs; use 'smsbatch run --force FILE' for the one file")
        }
    }

    func run() async throws {
        try await runSpool(common, job, metricsFile, serve: metrics.flatMap(ListenAddress.init)) { try await $0.watch() }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List jobs from the state ledger, or show one job and every batch.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Argument(help: "A job id: show it with its batches.")
    var job: String?

    func run() async throws {
        let config = try common.loadConfig()
        // Reading never creates: a folder with no ledger says so.
        guard config.ledgerExists else {
            printError("\(config.ledgerLocation): no ledger here (configuration \(common.configSource)): no job has run with it; "
                + "run jobs from the folder where smsbatch ran, or give its pipeline.yaml with -c")
            if let job {
                report(CommandError(subject: config.ledgerLocation, problem: "no job \(job)", exitStatus: .noInput))
                throw ExitCode(ExitStatus.noInput.rawValue)
            }
            say(json ? "[]" : "no jobs yet")
            return
        }
        do {
            let ledger = try LedgerStore.open(config)
            if let job {
                guard let record = try ledger.job(id: job) else {
                    report(CommandError(subject: config.ledgerLocation, problem: "no job \(job) in this ledger; 'smsbatch jobs' lists them", exitStatus: .noInput))
                    throw ExitCode(ExitStatus.noInput.rawValue)
                }
                let view = try JobView.load(record, from: ledger, batches: true)
                say(json ? JobListing.json(view) : JobListing.detail(view))
            } else {
                var views: [JobView] = []
                for record in try ledger.jobs() { views.append(try JobView.load(record, from: ledger, batches: false)) }
                say(json ? JobListing.json(views) : JobListing.table(views))
            }
        } catch let e as LedgerError {
            report(e)
            throw ExitCode(e.exitStatus.rawValue)
        }
    }
}
