import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchWebhook

struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Receive the provider's pushed delivery reports until SIGINT/SIGTERM (put a TLS proxy in front).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Port to listen on (default dlr.port, 8089; 0 = any free port, printed).")
    var port: Int?

    @Option(help: "Address to listen on (default dlr.listen, 127.0.0.1: a reverse proxy in front terminates TLS).")
    var listen: String?

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0…65535, not \(port)") }
    }

    func run() async throws {
        let config = try common.loadConfig()
        let secretName = config.dlr.webhookSecretEnv
        guard let secret = ProcessInfo.processInfo.environment[secretName], !secret.isEmpty else {
            report(CommandError(subject: "webhook", problem: "no bearer secret: set the environment variable \(secretName) (dlr.webhook_secret_env) "
                + "to the secret the provider sends as 'Authorization: Bearer …'", exitStatus: .config))
            throw ExitCode(ExitStatus.config.rawValue)
        }
        let existed = config.ledgerExists
        let inbox: DeliveryInbox
        let server: WebhookServer
        do {
            let ledger = try LedgerStore.open(config)
            inbox = DeliveryInbox(ledger: ledger, config: config, log: { printError("webhook: \($0)") })
            do {
                server = try WebhookServer(listen: listen ?? config.dlr.listen, port: port ?? config.dlr.port, secret: secret, inbox: inbox)
            } catch {
                inbox.stop()
                report(CommandError(subject: "webhook", problem: "cannot listen on \(listen ?? config.dlr.listen) port \(port ?? config.dlr.port): \(error)",
                                    exitStatus: .osError))
                throw ExitCode(ExitStatus.osError.rawValue)
            }
        } catch let e as LedgerError {
            report(e)
            throw ExitCode(e.exitStatus.rawValue)
        }
        Shutdown.install(announce: false)
        printError("smsbatch: configuration \(common.configSource); ledger \(config.ledgerLocation)\(existed ? "" : " (new)")")
        // One line on stdout, at once: callers read it to learn the port.
        FileHandle.standardOutput.write(Data("webhook listening on http://\(listen ?? config.dlr.listen):\(server.port)/\n".utf8))
        var last = inbox.snapshot
        var tick = 0
        while !StopSignal.process.requested {
            try? await Task.sleep(nanoseconds: 50_000_000)
            tick += 1
            if tick % 200 == 0, inbox.snapshot != last {
                last = inbox.snapshot
                printError("webhook: " + Self.describe(last))
            }
        }
        // The inbox first: requests still waiting are answered (committed, or 503) while the
        // event loop is alive to write the answers.
        inbox.stop()
        server.stop()
        printError("webhook: stopped; " + Self.describe(inbox.snapshot))
    }

    static func describe(_ t: DeliveryInbox.Totals) -> String {
        "\(t.reports) reports in \(t.requests) requests, \(t.commits) commits: \(t.recording.recorded) final statuses recorded, \(t.recording.repeated) already known, "
            + "\(t.recording.unmatched) for no known message (kept), \(t.recording.conflicts.count) disagreeing (first kept)"
    }
}
