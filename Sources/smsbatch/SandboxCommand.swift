import ArgumentParser
import Dispatch
import Foundation
import SMSBatch
import SMSBatchSandbox

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Serve the built-in simulator of the provider API on 127.0.0.1 until SIGINT/SIGTERM.")

    @Option(help: "Port on 127.0.0.1 (0 = any free port; the chosen one is printed).")
    var port: Int = 0

    @Option(help: "The access token to accept (default: $SMSBATCH_TOKEN, else 'sandbox').")
    var token: String?

    @Option(help: "Requests a minute per token before 429 (0 = no limit).")
    var rateLimit: Int = 1000

    @Option(help: "Share (0-1) of send requests answered with a 5xx, accepting nothing.")
    var failRate: Double = 0

    @Option(help: "Share (0-1) of send requests accepted, then left unanswered.")
    var dropRate: Double = 0

    @Option(name: .customLong("latency"), help: "Delay every answer by this many milliseconds.")
    var latencyMs: Int = 0

    @Option(help: "Seed of the fault sequence and of the delivery reports.")
    var seed: UInt64 = 1

    @Option(help: "Seconds from acceptance to a message's final delivery status.")
    var dlrDelay: Double = 3

    @Option(help: "Share (0-1) of messages whose delivery fails (ABSENT-SUB, INVALID-SUB, DNDNUMB …).")
    var dlrFailRate: Double = 0.05

    @Option(help: "Share (0-1) of delivery reports pushed twice.")
    var dlrDupRate: Double = 0

    @Option(help: "Push each delivery report to this URL (the customer's webhook).")
    var webhook: String?

    @Option(help: "Bearer secret of the pushes (default: $SMSBATCH_WEBHOOK_SECRET).")
    var webhookSecret: String?

    @Option(help: "Seconds between a failed push and its retry (3 retries).")
    var webhookRetry: Double = 2

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535, not \(port)") }
        guard rateLimit >= 0 else { throw ValidationError("--rate-limit must be 0 (off) or more, not \(rateLimit)") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be 0…1, not \(failRate)") }
        guard (0...1).contains(dropRate) else { throw ValidationError("--drop-rate must be 0…1, not \(dropRate)") }
        guard (0...600_000).contains(latencyMs) else { throw ValidationError("--latency must be 0…600000 ms, not \(latencyMs)") }
        if let token, token.isEmpty { throw ValidationError("--token must not be empty") }
        guard (0...86_400).contains(dlrDelay) else { throw ValidationError("--dlr-delay must be 0…86400 s, not \(dlrDelay)") }
        guard (0...1).contains(dlrFailRate) else { throw ValidationError("--dlr-fail-rate must be 0…1, not \(dlrFailRate)") }
        guard (0...1).contains(dlrDupRate) else { throw ValidationError("--dlr-dup-rate must be 0…1, not \(dlrDupRate)") }
        guard (0...86_400).contains(webhookRetry) else { throw ValidationError("--webhook-retry must be 0…86400 s, not \(webhookRetry)") }
        if let webhook, URL(string: webhook)?.host == nil || !(webhook.hasPrefix("http://") || webhook.hasPrefix("https://")) {
            throw ValidationError("--webhook must be an http:// or https:// URL, not \(webhook)")
        }
    }

    func run() async throws {
        var options = SandboxOptions(token: token ?? ProcessInfo.processInfo.environment["SMSBATCH_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? "sandbox")
        options.port = UInt16(port)
        options.rateLimit = rateLimit
        options.failRate = failRate
        options.dropRate = dropRate
        options.latencyMs = latencyMs
        options.seed = seed
        options.dlrDelay = dlrDelay
        options.dlrFailRate = dlrFailRate
        options.dlrDupRate = dlrDupRate
        options.webhook = webhook
        options.webhookSecret = webhookSecret ?? ProcessInfo.processInfo.environment["SMSBATCH_WEBHOOK_SECRET"] ?? ""
        options.webhookRetry = webhookRetry
        let server = SandboxServer(options: options)
        // Signals are caught before the port is announced, so a caller that reads the line and
        // signals at once is never killed by the default action.
        Shutdown.install(announce: false)
        do { try server.start() } catch {
            report(CommandError(subject: "sandbox", problem: "cannot start: \(error)", exitStatus: .osError))
            throw ExitCode(ExitStatus.osError.rawValue)
        }
        // One line, written straight to the descriptor: callers read it to learn the port.
        FileHandle.standardOutput.write(Data("sandbox listening on \(server.endpoint)\n".utf8))
        while !StopSignal.process.requested { try? await Task.sleep(nanoseconds: 50_000_000) }
        server.stop()
        printError("sandbox: stopped")
    }
}
