import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchSandbox

struct DlrCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlr",
        abstract: "Pull delivery reports for jobs whose submitted rows have no final status yet, and update their result files.")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Job ids (default: every job still awaiting reports).")
    var jobs: [String] = []

    func run() async throws {
        let config = try common.loadConfig()
        guard config.ledgerExists else {
            report(CommandError(subject: config.ledgerLocation, problem: "no ledger here (configuration \(common.configSource)): no job has been sent with it",
                                exitStatus: .noInput))
            throw ExitCode(ExitStatus.noInput.rawValue)
        }
        Shutdown.install()
        do {
            let ledger = try LedgerStore.open(config)
            for id in jobs where try ledger.job(id: id) == nil {
                report(CommandError(subject: config.ledgerLocation, problem: "no job \(id) in this ledger; 'smsbatch jobs' lists them", exitStatus: .noInput))
                throw ExitCode(ExitStatus.noInput.rawValue)
            }
            if config.send.endpoint == "sandbox" {
                printError("smsbatch: send.endpoint is the built-in sandbox, which forgets its messages when the process that sent them ends: "
                    + "use 'smsbatch run --wait-dlr 30s' to collect its reports, or a standalone 'smsbatch sandbox' as the endpoint")
            }
            let puller: DeliveryPuller
            do { puller = try DeliveryPuller.make(config: config, ledger: ledger, options: RunOptions(), progress: TerminalProgress(), sandbox: SandboxLauncher()) }
            catch {
                report(CommandError(subject: "dlr", problem: error.message, exitStatus: error.exitStatus))
                throw ExitCode(error.exitStatus.rawValue)
            }
            let now = common.parsedNow ?? Int64(Date().timeIntervalSince1970)
            let result = try await puller.pull(jobIDs: jobs, now: now)
            try printOutcome(result, ledger: ledger, now: now)
            if result.credentialsRefused != nil { throw ExitCode(ExitStatus.credentials.rawValue) }
            if !result.failures.isEmpty { throw ExitCode(ExitStatus.unavailable.rawValue) }
        } catch let e as any Diagnosable {
            report(e)
            throw ExitCode(e.exitStatus.rawValue)
        }
    }

    private func printOutcome(_ result: DeliveryPuller.Result, ledger: any Ledger, now: Int64) throws {
        if result.jobs.isEmpty { say("no job awaits delivery reports") }
        for id in result.jobs {
            say(HumanSummary.deliveryLine(job: id, try ledger.deliveryCounts(jobID: id)))
        }
        let r = result.recording
        printError("smsbatch: \(result.requests) lookups; \(r.recorded) final statuses recorded now, \(r.repeated) already known, "
            + "\(r.unmatched) for no known message (kept)")
        for c in r.conflicts.prefix(10) { printError("warning: \(c)") }
        if r.conflicts.count > 10 { printError("warning: \(r.conflicts.count - 10) more reports disagree with a recorded final status (kept the first)") }
        for (job, why) in result.failures { report(CommandError(subject: job, problem: "delivery reports not pulled: \(why)", exitStatus: .unavailable)) }
        if let why = result.credentialsRefused { report(CommandError(subject: "dlr", problem: "the provider refused the credentials: \(why)", exitStatus: .credentials)) }
    }
}
