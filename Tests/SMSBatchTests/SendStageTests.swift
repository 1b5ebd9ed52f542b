import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// A folder with a pipeline.yaml sending to `endpoint`, and a generated recipient file.
private func sendingDir(endpoint: String, send extra: String = "", rows: Int, seed: UInt64) throws -> (TempDir, GeneratorStats) {
    let dir = TempDir()
    dir.write("pipeline.yaml", """
        send:
          endpoint: \(endpoint)
          timeout: 120s
          max_attempts: 10
        \(extra)
        split:
          batch_size: 1000
        """)
    let fd = open(dir.file("big.csv"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    defer { close(fd) }
    let stats = try generateRecipients(GeneratorOptions(rows: rows, seed: seed), to: fd)
    return (dir, stats)
}

func jsonFile(_ path: String) -> [String: Any] {
    let data = FileManager.default.contents(atPath: path) ?? Data()
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

private func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

/// Every file in a folder tree, hidden ones included.
private func allFiles(_ dir: String) -> [String] {
    (FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []).sorted()
}

@Suite("Send stage: what the operator sees while a job sends, and after it stops", .tags(.process), .notInFastRuns)
struct SendStageTests {
    @Test("SIGINT mid-send: acknowledged at once; the stop line, summary.json and jobs JOB count what the provider accepted; the same command resumes")
    func interrupted() throws {
        // 40 requests, 4 at a time, a second each: about 10 s, so a late signal still finds work left.
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--latency", "1000"])
        let (dir, stats) = try sendingDir(endpoint: sandbox.endpoint, send: "  requests_per_minute: 1000", rows: 20_000, seed: 41)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        let toSend = stats.valid - stats.duplicates
        let first = try Background(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 30) { ((try? sandbox.accepted().count) ?? 0) > 0 })
        first.signal(SIGINT)
        #expect(first.wait(timeout: 30) == 0)
        #expect(first.stderr.contains("stopping after the requests in flight; Ctrl-C again to stop now"))
        let accepted = try sandbox.accepted().count
        #expect(accepted > 0 && accepted < toSend)
        // Requests in flight finished: nothing in doubt, and the counts are the provider's.
        #expect(first.stdout.contains("stopped: \(grouped(accepted)) of \(grouped(toSend)) submitted, 0 in doubt; the same command resumes"), "\(first.stdout)")
        let summary = jsonFile(dir.file("out/summary.json"))
        #expect(summary["status"] as? String == "interrupted")
        #expect(summary["submitted"] as? Int == accepted)
        #expect(summary["in_doubt"] as? Int == 0)
        #expect(summary["pending"] as? Int == toSend - accepted - (summary["failed"] as? Int ?? -1))
        let job = try #require(summary["job"] as? String)
        let listed = try smsbatch(["jobs", "--json", job], cwd: dir.path)
        let view = json(listed.stdout)
        #expect(view["status"] as? String == "interrupted")
        #expect(view["submitted"] as? Int == accepted)
        let batches = try #require(view["batches"] as? [[String: Any]])
        #expect(batches.count == summary["batches"] as? Int)
        #expect(batches.reduce(0) { $0 + ($1["submitted"] as? Int ?? 0) } == accepted)
        #expect(batches.reduce(0) { $0 + ($1["rows"] as? Int ?? 0) } == toSend)
        // No lock or queue left behind.
        #expect(!allFiles(dir.file("out")).contains { $0.hasSuffix(".job.lock") || $0.hasSuffix(".send-queue") })

        let second = try smsbatch(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(second.status == 0)
        #expect(second.stdout.contains("completed (submitted \(grouped(toSend)), failed 0)"))
        #expect(try sandbox.accepted().count == toSend)
        #expect(try sandbox.accepted().repeats == 0)
        #expect(jsonFile(dir.file("out/summary.json"))["pending"] as? Int == 0)
        #expect(!allFiles(dir.file("out")).contains { $0.hasSuffix(".job.lock") || $0.hasSuffix(".send-queue") })
    }

    @Test("a second Ctrl-C stops without waiting for the answers: the rows in flight are in doubt in summary.json and jobs")
    func secondSignal() throws {
        // Sends take a minute to answer (the token check does not): only an abort ends the
        // run before that.
        let provider = try TestProvider { $0.sendLatencyMs = 60_000 }
        let (dir, stats) = try sendingDir(endpoint: provider.server.endpoint, rows: 2_000, seed: 42)
        let env = [provider.tokenEnv: provider.token]
        // One request carries every row: once it has arrived, nothing else is in flight.
        dir.write("pipeline.yaml", "send:\n  endpoint: \(provider.server.endpoint)\n  token_env: \(provider.tokenEnv)\n  nodes_per_request: 5000\n  concurrency: 1\n")
        let run = try Background(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 30) { provider.server.accepted.count > 0 })
        run.signal(SIGINT)
        usleep(200_000)
        run.signal(SIGINT)
        #expect(run.wait(timeout: 40) == 0, "still waiting for answers after a second Ctrl-C")
        #expect(run.stderr.contains("stopping now"))
        let accepted = provider.server.accepted.count
        let summary = jsonFile(dir.file("out/summary.json"))
        #expect(summary["status"] as? String == "interrupted")
        #expect(summary["submitted"] as? Int == 0)
        #expect(summary["in_doubt"] as? Int == accepted)
        #expect(run.stdout.contains("0 of \(grouped(stats.valid - stats.duplicates)) submitted, \(grouped(accepted)) in doubt"))
        let job = try #require(summary["job"] as? String)
        let view = json(try smsbatch(["jobs", "--json", job], cwd: dir.path).stdout)
        #expect(view["in_doubt"] as? Int == accepted)
    }

    @Test("kill -9 mid-send: summary.json (rewritten while sending) and jobs JOB still say what the ledger recorded")
    func killed() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory())
        // One request a second: the send lasts long enough for summary.json to be rewritten.
        let (dir, stats) = try sendingDir(endpoint: sandbox.endpoint, send: "  requests_per_minute: 60\n  nodes_per_request: 250",
                                          rows: 10_000, seed: 43)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        let run = try Background(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 60) { (jsonFile(dir.file("out/summary.json"))["submitted"] as? Int ?? 0) > 0 })
        run.signal(SIGKILL)
        _ = run.wait(timeout: 10)
        let summary = jsonFile(dir.file("out/summary.json"))
        #expect(summary["status"] as? String == "sending")
        let written = try #require(summary["submitted"] as? Int)
        let accepted = try sandbox.accepted().count
        #expect(written > 0 && written <= accepted)
        let job = try #require(summary["job"] as? String)
        let listed = try smsbatch(["jobs"], cwd: dir.path)
        #expect(listed.stdout.contains("\(job)  interrupted"), "\(listed.stdout)")
        let view = json(try smsbatch(["jobs", "--json", job], cwd: dir.path).stdout)
        let submitted = try #require(view["submitted"] as? Int), inDoubt = try #require(view["in_doubt"] as? Int)
        // The ledger knows every answer it recorded; what it did not hear back is in doubt.
        #expect(submitted >= written)
        #expect(submitted <= accepted && accepted <= submitted + inDoubt)
        #expect(view["pending"] as? Int == stats.valid - stats.duplicates - submitted - inDoubt - (view["failed"] as? Int ?? -1))
        let detail = try smsbatch(["jobs", job], cwd: dir.path).stdout
        #expect(detail.contains("status       interrupted (no process is running it; give the same file again to resume)"))
        #expect(detail.contains("BATCH"))
    }

    @Test("while sending, progress lines appear on stderr (not a terminal: at most one every 5 s)")
    func progressLines() throws {
        // Six requests, one at a time, a second each: the send lasts more than 5 s.
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--latency", "1000"])
        let (dir, _) = try sendingDir(endpoint: sandbox.endpoint, send: "  concurrency: 1\n  nodes_per_request: 500", rows: 3_000, seed: 44)
        let r = try smsbatch(["run", "big.csv", "--out", "out"], cwd: dir.path, env: ["SMSBATCH_TOKEN": sandbox.token])
        #expect(r.status == 0)
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("sending: ") }
        #expect(!lines.isEmpty, "\(r.stderr)")
        #expect(lines.allSatisfy { $0.contains(" submitted, ") && $0.contains(" rows/s, ") && $0.contains(" retries, ") && $0.contains(" in doubt") })
    }

    @Test("no server at send.endpoint: the error names send.endpoint with host and port (exit 69)")
    func unreachable() throws {
        let closed = try closedPort()
        let (dir, _) = try sendingDir(endpoint: "http://127.0.0.1:\(closed)/api/v2/", rows: 100, seed: 45)
        dir.write("pipeline.yaml", "send:\n  endpoint: http://127.0.0.1:\(closed)/api/v2/\n  max_attempts: 1\n")
        let r = try smsbatch(["run", "big.csv", "--out", "out"], cwd: dir.path, env: ["SMSBATCH_TOKEN": "t"])
        #expect(r.status == 69)
        #expect(r.stderr.contains("cannot reach the provider at send.endpoint: cannot connect to 127.0.0.1 port \(closed): connection refused"), "\(r.stderr)")
    }
}

