import ArgumentParser
import Foundation
import SMSBatch

@main
struct SMSBatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smsbatch",
        abstract: "Check, dedupe, split and send bulk-messaging campaign files within the provider's limits.",
        subcommands: [RunCommand.self, DrainCommand.self, WatchCommand.self, SandboxCommand.self, JobsCommand.self])
}

/// Options every command shares (SPEC §2).
struct CommonOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .long], help: "pipeline.yaml to read (default ./pipeline.yaml; none = built-in defaults).")
    var config: String?

    @Option(help: "Pretend the current time is this ISO 8601 time (reproducible runs).")
    var now: String?

    /// Loads the configuration or exits 78 naming the key.
    func loadConfig() throws -> PipelineConfig {
        do { return try ConfigLoader.load(path: config) } catch {
            printError(error.description)
            throw ExitCode(78)
        }
    }

    func parsedNow() throws -> Int64? {
        guard let now else { return nil }
        guard let t = parseISO8601(now) else {
            throw ValidationError("--now: '\(now)' is not an ISO 8601 time like 2026-11-26T10:00:00Z")
        }
        return t
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
