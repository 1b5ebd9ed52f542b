import Foundation
import RecipientGenerator
import Testing

/// The built `smsbatch` binary, beside the test bundle.
let smsbatchBinary: String = {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return dir.appendingPathComponent("smsbatch").path
}()

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs the binary with `args` in `cwd` and waits for it. `combined`: stdout and stderr go
/// to one file (as in a terminal or `2>&1`), returned as `stdout`, so their order shows.
func smsbatch(_ args: [String], cwd: String, env extra: [String: String] = [:], combined: Bool = false) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: smsbatchBinary)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    var env = ProcessInfo.processInfo.environment
    env["SMSBATCH_TOKEN"] = nil
    for (k, v) in extra { env[k] = v }
    p.environment = env
    // Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    let id = UUID().uuidString
    let outPath = NSTemporaryDirectory() + "smsbatch-out-" + id, errPath = NSTemporaryDirectory() + "smsbatch-err-" + id
    FileManager.default.createFile(atPath: outPath, contents: nil)
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: outPath); try? FileManager.default.removeItem(atPath: errPath) }
    let out = FileHandle(forWritingAtPath: outPath)
    p.standardOutput = out
    p.standardError = combined ? out : FileHandle(forWritingAtPath: errPath)
    try p.run()
    p.waitUntilExit()
    let outData = FileManager.default.contents(atPath: outPath) ?? Data()
    let errData = FileManager.default.contents(atPath: errPath) ?? Data()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

private let good = "recipient,sender,message\n9876543210,MOBTXT,Hello\n9876543211,MOBTXT,Hello\n"

@Suite("CLI: commands, outputs and exit codes of SPEC §9", .tags(.process), .notInFastRuns)
struct CLITests {
    @Test("a good file exits 0 and prints the plan; --json prints summary.json instead")
    func success() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        let r = try smsbatch(["run", "--dry-run", "--now", "2026-11-26T04:30:00Z", "--out", "o", "a.csv"], cwd: dir.path)
        #expect(r.status == 0)
        #expect(r.stdout.contains("batch 1"))
        // The plan shows the estimated send time; progress goes to stderr in plain lines.
        #expect(r.stdout.contains("to send (estimate at 600 requests/min, 4 in flight"))
        #expect(r.stdout.contains("sends to: nowhere (dry run)"))
        #expect(r.stderr.contains("a.csv: reading"))
        #expect(!r.stdout.contains("a.csv: reading"))
        #expect(FileManager.default.fileExists(atPath: dir.file("o/batches/batch-0001.csv")))
        let j = try smsbatch(["run", "--dry-run", "--json", "--out", "o2", "a.csv"], cwd: dir.path)
        #expect(j.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect(json?["to_send"] as? Int == 2)
    }

    @Test("without --out, outputs go to <watch.root>/outbox/<job id>/")
    func outbox() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        dir.write("pipeline.yaml", "watch:\n  root: ./myspool\n")
        let r = try smsbatch(["run", "--dry-run", "--json", "--now", "2026-11-26T04:30:00Z", "a.csv"], cwd: dir.path)
        #expect(r.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let job = try #require(json?["job"] as? String)
        #expect(job.hasPrefix("20261126T043000Z-"))
        #expect(FileManager.default.fileExists(atPath: dir.file("myspool/outbox/\(job)/summary.json")))
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.file("myspool/outbox"))
        #expect(left == [job])
    }

    @Test("usage errors exit 64", arguments: [["run"], ["run", "--bogus", "a.csv"], ["run", "--dry-run", "--kind", "huge", "a.csv"], ["frobnicate"]])
    func usage(args: [String]) throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        #expect(try smsbatch(args, cwd: dir.path).status == 64)
    }

    @Test("a bad --now is a usage error of the subcommand, not the top-level usage")
    func badNow() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        let r = try smsbatch(["run", "--now", "tomorrow", "a.csv"], cwd: dir.path)
        #expect(r.status == 64)
        #expect(r.stderr.contains("--now: 'tomorrow' is not an ISO 8601 time"))
        #expect(r.stderr.contains("Usage: smsbatch run"))
    }

    @Test("watch --force is refused: a daemon would resend every repeat dropped while it runs")
    func watchForce() throws {
        let dir = TempDir()
        // In the background: were it accepted, it would watch until stopped.
        let watch = try Background(["watch", "--force"], cwd: dir.path)
        let status = watch.wait(timeout: 30)
        if status == nil { watch.signal(SIGKILL) }
        #expect(status == 64)
        #expect(watch.stderr.contains("--force is refused for watch"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("spool")))
    }

    @Test("the plan on stdout comes before the last line on stderr, even into a file")
    func planBeforeProgress() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        let r = try smsbatch(["run", "--dry-run", "--out", "o", "a.csv"], cwd: dir.path, combined: true)
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let plan = try #require(lines.firstIndex { $0.hasPrefix("job ") })
        let finished = try #require(lines.firstIndex { $0.hasPrefix("a.csv: completed") })
        #expect(plan < finished, "\(r.stdout)")
    }

    @Test("with no pipeline.yaml a run that sends says so on stderr, and the plan says it goes to the built-in sandbox")
    func noConfigSandbox() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        let r = try smsbatch(["run", "--out", "o", "a.csv"], cwd: dir.path)
        #expect(r.status == 0)
        #expect(r.stderr.contains("smsbatch: no ./pipeline.yaml: built-in defaults; sends to the built-in sandbox (nothing leaves this machine)"))
        #expect(r.stdout.contains("sends to: the built-in sandbox: nothing leaves this machine"))
        #expect(r.stdout.contains("completed (submitted 2, failed 0)"))
        let summary = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: dir.file("o/summary.json"))!) as? [String: Any]
        #expect(summary?["destination"] as? String == "built-in sandbox")
    }

    @Test("a plan that sends to a real endpoint names its host and port")
    func planNamesTheHost() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory())
        let dir = TempDir()
        dir.write("a.csv", good)
        dir.write("pipeline.yaml", "send:\n  endpoint: \(sandbox.endpoint)\n")
        let r = try smsbatch(["run", "--out", "o", "a.csv"], cwd: dir.path, env: ["SMSBATCH_TOKEN": sandbox.token])
        #expect(r.status == 0)
        let port = try #require(URLComponents(string: sandbox.endpoint)?.port)
        #expect(r.stdout.contains("sends to: 127.0.0.1:\(port)"))
        #expect(!r.stderr.contains("no ./pipeline.yaml"))
    }

    @Test("drain in a folder with no spool says which spool and ledger it creates; jobs with no ledger says so and creates nothing")
    func nothingSilent() throws {
        let dir = TempDir()
        let jobs = try smsbatch(["jobs"], cwd: dir.path)
        #expect(jobs.status == 0)
        #expect(jobs.stdout == "no jobs yet\n")
        #expect(jobs.stderr.contains("./spool/state.sqlite: no ledger here"))
        #expect(try smsbatch(["jobs", "20261126T043000Z-0123abcd"], cwd: dir.path).status == 66)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        let drain = try smsbatch(["drain", "--dry-run"], cwd: dir.path)
        #expect(drain.status == 0)
        #expect(drain.stderr.contains("configuration built-in defaults (no ./pipeline.yaml); spool ./spool (created now); ledger ./spool/state.sqlite (new)"), "\(drain.stderr)")
        let again = try smsbatch(["drain", "--dry-run"], cwd: dir.path)
        #expect(again.stderr.contains("spool ./spool; ledger ./spool/state.sqlite"), "\(again.stderr)")
    }

    @Test("a rejected file exits 65 with the reason in summary.json")
    func rejected() throws {
        let dir = TempDir()
        dir.write("h.csv", "recipient,sender,message\n")
        let r = try smsbatch(["run", "--dry-run", "--out", "o", "h.csv"], cwd: dir.path)
        #expect(r.status == 65)
        #expect(r.stderr.contains("no_rows"))
        #expect(try String(contentsOfFile: dir.file("o/summary.json"), encoding: .utf8).contains("\"reject_reason\": \"no_rows\""))
    }

    @Test("a missing file or a directory exits 66 with one line naming it", arguments: ["nope.csv", "."])
    func unreadable(path: String) throws {
        let dir = TempDir()
        let r = try smsbatch(["run", "--dry-run", "--out", "o", path], cwd: dir.path)
        #expect(r.status == 66)
        #expect(r.stderr.contains("\(path): error:"))
        #expect(!r.stderr.contains("Fatal"))
    }

    @Test("configuration errors exit 78 naming the key and its line", arguments: [
        ("split:\n  batch_size: 200000\n  provider: bics\n", "split.batch_size", ":2:"),
        ("input:\n  max_file_bytes: 10\n  colour: red\n", "input.colour", ":3:"),
        ("caps:\n  bulk: 600000\n", "caps.bulk", ":2:"),
    ])
    func configErrors(yaml: String, key: String, line: String) throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        dir.write("bad.yaml", yaml)
        let r = try smsbatch(["run", "--dry-run", "-c", "bad.yaml", "--out", "o", "a.csv"], cwd: dir.path)
        #expect(r.status == 78)
        #expect(r.stderr.contains(key))
        #expect(r.stderr.contains(line))
    }

    @Test("a missing opt-out list exits 66 naming it")
    func missingOptOut() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        dir.write("pipeline.yaml", "validate:\n  optout_list: gone.txt\n")
        let r = try smsbatch(["run", "--dry-run", "--out", "o", "a.csv"], cwd: dir.path)
        #expect(r.status == 66)
        #expect(r.stderr.contains("gone.txt"))
    }

    @Test("a generated 600,000-row file with --kind bulk: over_cap split gives 2 parts (500,000 + the rest), over_cap reject writes no batch")
    func bulkCap() throws {
        let dir = TempDir()
        let path = dir.file("big.csv")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try generateRecipients(GeneratorOptions(rows: 600_000, seed: 11, invalidShare: 0, duplicateShare: 0), to: fd)
        close(fd)
        let r = try smsbatch(["run", "--dry-run", "--json", "--kind", "bulk", "--out", "split", "big.csv"], cwd: dir.path)
        #expect(r.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["parts"] as? Int == 2)
        #expect(json["batches"] as? Int == 60)
        let plan = try #require(json["plan"] as? [[String: Any]])
        let rowsByPart = Dictionary(grouping: plan, by: { $0["part"] as! Int }).mapValues { $0.reduce(0) { $0 + ($1["rows"] as! Int) } }
        #expect(rowsByPart == [1: 500_000, 2: 100_000])

        dir.write("reject.yaml", "caps:\n  over_cap: reject\n")
        let rej = try smsbatch(["run", "--dry-run", "--json", "-c", "reject.yaml", "--kind", "bulk", "--out", "rej", "big.csv"], cwd: dir.path)
        #expect(rej.status == 65)
        #expect(rej.stdout.contains("\"reject_reason\": \"over_cap\""))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("rej/batches")).isEmpty)
    }

    @Test("split.start not more than 5 minutes ahead is a configuration error (exit 78)")
    func startInThePast() throws {
        let dir = TempDir()
        dir.write("a.csv", good)
        dir.write("pipeline.yaml", "split:\n  start: 2026-11-26T04:33:00Z\n")
        let r = try smsbatch(["run", "--dry-run", "--now", "2026-11-26T04:30:00Z", "--out", "o", "a.csv"], cwd: dir.path)
        #expect(r.status == 78)
        #expect(r.stderr.contains("split.start"))
    }
}
