import ArgumentParser
import Foundation
import SMSBatch

@main
struct SMSBatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smsbatch",
        abstract: "Check, dedupe, split and send bulk-messaging campaign files within the provider's limits.",
        subcommands: [RunCommand.self, DrainCommand.self, WatchCommand.self, DlrCommand.self, WebhookCommand.self, SandboxCommand.self, JobsCommand.self])
}

/// Options every command shares (SPEC §2).
struct CommonOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .long], help: "pipeline.yaml to read (default ./pipeline.yaml; none = built-in defaults).")
    var config: String?

    @Option(help: "Pretend the current time is this ISO 8601 time (reproducible runs).")
    var now: String?

    func validate() throws {
        if let now, parseISO8601(now) == nil {
            throw ValidationError("--now: '\(now)' is not an ISO 8601 time like 2026-11-26T10:00:00Z")
        }
    }

    /// Which pipeline.yaml the command reads, for the lines that say so.
    var configSource: String {
        if let config { return config }
        return FileManager.default.fileExists(atPath: "pipeline.yaml") ? "./pipeline.yaml" : "built-in defaults (no ./pipeline.yaml)"
    }

    /// Whether a pipeline.yaml was found (given, or in the current folder).
    var configFound: Bool { config != nil || FileManager.default.fileExists(atPath: "pipeline.yaml") }

    /// Loads the configuration or exits 78 naming the key.
    func loadConfig() throws -> PipelineConfig {
        do { return try ConfigLoader.load(path: config) } catch {
            report(error)
            throw ExitCode(error.exitStatus.rawValue)
        }
    }

    /// `--now` as UTC seconds (checked by `validate()`).
    var parsedNow: Int64? { now.flatMap(parseISO8601) }
}

/// An error the command itself finds (no job, no ledger).
struct CommandError: Diagnosable {
    let subject: String
    let problem: String
    let exitStatus: ExitStatus
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Prints a result on stdout at once: stdout is block-buffered into a pipe or file, and a
/// plan must come out before the progress and warnings that follow it on stderr.
func say(_ text: String) {
    print(text)
    fflush(nil)  // every output stream: `stdout` itself is not concurrency-safe in Swift 6
}
