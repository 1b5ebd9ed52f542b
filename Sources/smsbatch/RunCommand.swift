import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchSandbox

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Process the files now, one job per file.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Write this job's outputs here instead of <watch.root>/outbox/<job id>/ (several files: a folder per job inside).")
    var out: String?

    @OptionGroup var job: JobOptions

    @Flag(help: "Print summary.json to stdout instead of the human summary.")
    var json = false

    @Argument(help: "Recipient files: CSV, or any compressed or archived form of it.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE") }
    }

    func run() async throws {
        let config = try common.loadConfig()
        let options = job.runOptions(now: common.parsedNow)
        if !options.dryRun {
            Shutdown.install()
            // Sending with nothing configured is allowed (the sandbox) but never silent.
            if !common.configFound {
                printError("smsbatch: no ./pipeline.yaml: built-in defaults; sends to \(ProviderEndpoint.describe(config.send.endpoint, dryRun: false))")
            }
        }
        let runner = JobRunner(config: config, options: options, progress: TerminalProgress(), sandbox: SandboxLauncher())
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
            } catch {
                report(error)
                worst = max(worst, error.exitStatus)
            }
        }
        if worst != .ok { throw ExitCode(worst.rawValue) }
    }
}
