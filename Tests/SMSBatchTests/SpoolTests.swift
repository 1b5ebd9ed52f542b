import Foundation
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// A spool folder with a pipeline.yaml that sends to `endpoint`.
private func spoolDir(endpoint: String, extra: String = "") -> TempDir {
    let dir = TempDir()
    dir.write("pipeline.yaml", """
        send:
          endpoint: \(endpoint)
          requests_per_minute: 1000
          timeout: 5s
          max_attempts: 10
        watch:
          root: ./spool
          settle: 1s
        split:
          batch_size: 1000
        \(extra)
        """)
    return dir
}

private func generate(_ path: String, rows: Int, seed: UInt64) throws -> GeneratorStats {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    defer { close(fd) }
    return try generateRecipients(GeneratorOptions(rows: rows, seed: seed), to: fd)
}

private func files(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
}

@Suite("Spool and ledger: repeats, the repetition window, drain, watch, resume", .serialized, .tags(.process), .notInFastRuns)
struct SpoolTests {
    @Test("the same content again is a repeat: nothing sent, the summary names the first job")
    func repeatFile() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        var config = provider.config()
        config.watch.root = dir.file("spool")
        let path = dir.write("a.csv", recipientCSV(["9876543210,MOBTXT,Hello,T", "9876543211,MOBTXT,Hello,T"]))
        let first = try await sendJob(path, config: config, in: dir)
        #expect(first.summary.submitted == 2)
        let copy = dir.write("copy-of-a.csv", try String(contentsOfFile: path, encoding: .utf8))
        let second = try await sendJob(copy, config: config, in: dir, now: testNow + 10)
        #expect(second.summary.repeatOf == first.summary.job)
        #expect(second.summary.submitted == 0)
        #expect(second.result.exitStatus == .ok)
        #expect(provider.server.accepted.count == 2)
    }

    @Test("rows an earlier job sent within dedupe.window are repeat_within_window duplicates")
    func repetitionWindow() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        var config = provider.config()
        config.watch.root = dir.file("spool")
        let a = dir.write("a.csv", recipientCSV(["9876543210,MOBTXT,Hello,T", "9876543211,MOBTXT,Hello,T"]))
        let b = dir.write("b.csv", recipientCSV(["+91 98765 43210,MOBTXT,Hello,T", "9876543212,MOBTXT,Hello,T"]))
        _ = try await sendJob(a, config: config, in: dir)
        let second = try await sendJob(b, config: config, in: dir, now: testNow + 600)
        #expect(second.duplicates.rows == [["2", "", "repeat_within_window", "+919876543210", "MOBTXT", "Hello"]])
        #expect(second.summary.submitted == 1)
        // --force sends content again, window or not.
        var forced = config
        forced.dedupe.window = 3600
        let again = try await sendJob(b, config: forced, in: dir, now: testNow + 900, force: true)
        #expect(again.summary.submitted == 2)
        // Outside the window the same row is sent again.
        let c = dir.write("c.csv", recipientCSV(["9876543210,MOBTXT,Hello,T"]))
        let third = try await sendJob(c, config: config, in: dir, now: testNow + 7200)
        #expect(third.summary.submitted == 1)
    }

    @Test("a drain while another drain holds the spool exits 75 at once (the lock is never released here: waiting would hang)")
    func drainLock() throws {
        let dir = spoolDir(endpoint: "sandbox")
        try FileManager.default.createDirectory(atPath: dir.file("spool"), withIntermediateDirectories: true)
        let fd = open(dir.file("spool/.lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let r = try smsbatch(["drain"], cwd: dir.path)
        #expect(r.status == 75)
        let w = try smsbatch(["watch"], cwd: dir.path)
        #expect(w.status == 75)
    }

    @Test("drain sends every claimable file, files them in done/ or failed/ with a reason, and exits with the worst code")
    func drain() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory())
        let dir = spoolDir(endpoint: sandbox.endpoint)
        try FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
        let a = try generate(dir.file("spool/inbox/a.csv"), rows: 500, seed: 31)
        let b = try generate(dir.file("spool/inbox/b.csv"), rows: 700, seed: 32)
        dir.write("spool/inbox/empty.csv", "")
        dir.write("spool/inbox/ignored.csv.part", "recipient,sender,message\n")
        let r = try smsbatch(["drain"], cwd: dir.path, env: ["SMSBATCH_TOKEN": sandbox.token])
        #expect(r.status == 65)
        #expect(files(dir.file("spool/done")) == ["a.csv", "b.csv"])
        #expect(files(dir.file("spool/failed")) == ["empty.csv", "empty.csv.reason.json"])
        #expect(files(dir.file("spool/inbox")) == ["ignored.csv.part"])
        let accepted = try sandbox.accepted()
        #expect(accepted.count == (a.valid - a.duplicates) + (b.valid - b.duplicates))
        #expect(accepted.repeats == 0)
        // One line per job on stdout with its counts and outputs.
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("./spool/processing/a.csv: completed: 500 rows, \(a.valid) valid, \(a.invalid) invalid, \(a.duplicates) duplicates, \(a.valid - a.duplicates) submitted, 0 failed; outputs in ./spool/outbox/") }, "\(r.stdout)")
        #expect(lines.contains { $0.hasPrefix("./spool/processing/empty.csv: rejected (no_rows): 0 rows") })
        let jobs = try smsbatch(["jobs"], cwd: dir.path)
        #expect(jobs.status == 0)
        #expect(jobs.stdout.contains("completed"))
        // FILE is where each file is now.
        #expect(jobs.stdout.contains("./spool/done/a.csv"))
        #expect(!jobs.stdout.contains("processing/"))
        let id = try #require(files(dir.file("spool/outbox")).first)
        let one = try smsbatch(["jobs", id], cwd: dir.path)
        #expect(one.status == 0)
        // Every batch from the ledger, with its counts.
        let batchLines = one.stdout.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") }
        #expect(batchLines.count == 1, "\(one.stdout)")
        let missing = try smsbatch(["jobs", "no-such-job"], cwd: dir.path)
        #expect(missing.status == 66)
        #expect(missing.stderr.hasPrefix("./spool/state.sqlite: error: no job no-such-job"))
    }

    @Test("a file written slowly is not claimed before it is complete; x.csv.part renamed to x.csv is claimed once it settles")
    func settle() throws {
        let dir = spoolDir(endpoint: "sandbox")
        let watch = try Background(["watch", "--dry-run"], cwd: dir.path)
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: dir.file("spool/inbox")) })
        // Appended over three seconds through one open file.
        let slow = dir.file("spool/inbox/slow.csv")
        FileManager.default.createFile(atPath: slow, contents: nil)
        let handle = FileHandle(forWritingAtPath: slow)!
        handle.write(Data("recipient,sender,message\n".utf8))
        for i in 0..<6 {
            handle.write(Data("98765432\(10 + i),MOBTXT,Hello \(i)\n".utf8))
            usleep(500_000)
            #expect(FileManager.default.fileExists(atPath: slow), "claimed while still being written")
        }
        try handle.close()
        #expect(eventually(timeout: 10) { files(dir.file("spool/done")).contains("slow.csv") })
        // A .part file is ignored until it is renamed; then it settles like any other.
        dir.write("spool/inbox/x.csv.part", "recipient,sender,message\n9876543210,MOBTXT,Hi\n")
        usleep(1_500_000)
        #expect(FileManager.default.fileExists(atPath: dir.file("spool/inbox/x.csv.part")))
        rename(dir.file("spool/inbox/x.csv.part"), dir.file("spool/inbox/x.csv"))
        #expect(eventually(timeout: 10) { files(dir.file("spool/done")).contains("x.csv") })
        watch.signal(SIGTERM)
        #expect(watch.wait(timeout: 10) == 0)
        let outbox = files(dir.file("spool/outbox"))
        #expect(outbox.count == 2)
    }

    @Test("two watchers on one inbox and 20 files dropped in: every file processed once, every row submitted once")
    func twoWatchers() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory())
        let dir = spoolDir(endpoint: sandbox.endpoint)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        let w1 = try Background(["watch"], cwd: dir.path, env: env)
        let w2 = try Background(["watch"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 10) { FileManager.default.fileExists(atPath: dir.file("spool/inbox")) })
        var expected = 0
        for i in 0..<20 {
            let part = dir.file("spool/inbox/f\(i).csv.part")
            let stats = try generate(part, rows: 300, seed: 100 + UInt64(i))
            expected += stats.valid - stats.duplicates
            rename(part, dir.file("spool/inbox/f\(i).csv"))
        }
        #expect(eventually(timeout: 60) { files(dir.file("spool/done")).count == 20 })
        w1.signal(SIGTERM)
        w2.signal(SIGTERM)
        #expect(w1.wait(timeout: 15) == 0)
        #expect(w2.wait(timeout: 15) == 0)
        #expect(files(dir.file("spool/outbox")).count == 20)
        let accepted = try sandbox.accepted()
        #expect(accepted.count == expected)
        #expect(accepted.repeats == 0)
    }

    @Test("SIGTERM during a send: exit 0 within the request timeout; the next run resumes with no row sent twice")
    func sigterm() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--latency", "200"])
        let dir = spoolDir(endpoint: sandbox.endpoint, extra: "")
        let stats = try generate(dir.file("big.csv"), rows: 20_000, seed: 41)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        let first = try Background(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 20) { ((try? sandbox.accepted().count) ?? 0) > 0 })
        first.signal(SIGTERM)
        // It stops after the requests in flight are answered (0.2 s each), not after the file.
        #expect(first.wait(timeout: 30) == 0)
        let partial = try sandbox.accepted().count
        #expect(partial < stats.valid - stats.duplicates)
        let second = try smsbatch(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(second.status == 0)
        let accepted = try sandbox.accepted()
        #expect(accepted.count == stats.valid - stats.duplicates)
        #expect(accepted.repeats == 0)
    }

    @Test("kill -9 at random moments, ten times in a row: the sandbox ends with every row exactly once and the ledger says completed")
    func killTest() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--latency", "20", "--drop-rate", "0.05", "--seed", "9"])
        let dir = spoolDir(endpoint: sandbox.endpoint)
        let stats = try generate(dir.file("big.csv"), rows: 50_000, seed: 42)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        var generator = SMSBatch.SplitMix64(seed: 20261203)  // seeded: the same kill moments every run
        var kills = 0
        while kills < 10 {
            let run = try Background(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
            usleep(UInt32.random(in: 200_000...1_500_000, using: &generator))
            if run.process.isRunning {
                run.signal(SIGKILL)
                _ = run.wait(timeout: 5)
                kills += 1
            } else {
                break
            }
        }
        let last = try smsbatch(["run", "big.csv", "--out", "out"], cwd: dir.path, env: env)
        #expect(last.status == 0, "\(last.stderr)")
        let accepted = try sandbox.accepted()
        #expect(accepted.count == stats.valid - stats.duplicates)
        #expect(accepted.repeats == 0)
        let ledger = try SQLiteLedger(path: dir.file("spool/state.sqlite"))
        let job = try #require(try ledger.jobs().first { $0.repeatOf == nil })
        #expect(job.status == .completed)
        // Every row is in exactly one output.
        let out = JobOutput(result: JobResult(summary: JobSummary()), dir: dir.file("out"))
        #expect(out.accountedRows.sorted() == Array(2...(stats.records + 1)))
        #expect(Set(out.batchRows.column("status")) == ["submitted"])
    }

    @Test("kill -9 of a watch at random moments, ten times: every row exactly once, the file in done/, the ledger completed")
    func killWatch() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory(), ["--latency", "20", "--drop-rate", "0.05", "--seed", "11"])
        let dir = spoolDir(endpoint: sandbox.endpoint)
        try FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
        let stats = try generate(dir.file("spool/inbox/big.csv.part"), rows: 50_000, seed: 43)
        rename(dir.file("spool/inbox/big.csv.part"), dir.file("spool/inbox/big.csv"))
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        var generator = SMSBatch.SplitMix64(seed: 20261203)  // seeded: the same kill moments every run
        for _ in 0..<10 {
            let watch = try Background(["watch"], cwd: dir.path, env: env)
            usleep(UInt32.random(in: 300_000...1_500_000, using: &generator))
            watch.signal(SIGKILL)
            _ = watch.wait(timeout: 5)
            if files(dir.file("spool/done")).contains("big.csv") { break }
        }
        let last = try Background(["watch"], cwd: dir.path, env: env)
        #expect(eventually(timeout: 120) { files(dir.file("spool/done")).contains("big.csv") })
        last.signal(SIGTERM)
        #expect(last.wait(timeout: 15) == 0)
        let accepted = try sandbox.accepted()
        #expect(accepted.count == stats.valid - stats.duplicates)
        #expect(accepted.repeats == 0)
        let ledger = try SQLiteLedger(path: dir.file("spool/state.sqlite"))
        #expect(try ledger.jobs().filter { $0.repeatOf == nil }.map(\.status) == [.completed])
        #expect(files(dir.file("spool/processing")).isEmpty)
    }

    @Test("a file written in 4 pieces 1 s apart, closed after each, with settle 4s: one job with every row")
    func writtenInPieces() throws {
        let dir = TempDir()
        dir.write("pipeline.yaml", "watch:\n  root: ./spool\n  settle: 4s\n")
        let watch = try Background(["watch", "--dry-run"], cwd: dir.path)
        #expect(eventually(timeout: 10) { watch.stderr.contains("watching") })
        let path = dir.file("spool/inbox/append.csv")
        let pieces = (0..<4).map { p in (0..<50).map { "98765\(String(format: "%05d", p * 50 + $0)),MOBTXT,Piece \(p)\n" }.joined() }
        dir.write("spool/inbox/append.csv", "recipient,sender,message\n" + pieces[0])
        for piece in pieces.dropFirst() {
            usleep(1_000_000)
            let handle = try #require(FileHandle(forWritingAtPath: path))
            handle.seekToEndOfFile()
            handle.write(Data(piece.utf8))
            try handle.close()
        }
        #expect(eventually(timeout: 30) { files(dir.file("spool/done")) == ["append.csv"] })
        watch.signal(SIGTERM)
        #expect(watch.wait(timeout: 15) == 0)
        let jobs = files(dir.file("spool/outbox"))
        #expect(jobs.count == 1)
        #expect(files(dir.file("spool/failed")).isEmpty)
        let summary = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: dir.file("spool/outbox/\(jobs[0])/summary.json"))!) as? [String: Any]
        #expect(summary?["rows"] as? Int == 200)
    }

    @Test("the same file dropped twice: the second goes to done/ as a repeat and nothing is sent")
    func droppedTwice() throws {
        let sandbox = try SandboxProcess(cwd: NSTemporaryDirectory())
        let dir = spoolDir(endpoint: sandbox.endpoint)
        try FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
        let stats = try generate(dir.file("spool/inbox/a.csv"), rows: 400, seed: 44)
        let env = ["SMSBATCH_TOKEN": sandbox.token]
        #expect(try smsbatch(["drain"], cwd: dir.path, env: env).status == 0)
        try FileManager.default.copyItem(atPath: dir.file("spool/done/a.csv"), toPath: dir.file("spool/inbox/a.csv"))
        let second = try smsbatch(["drain"], cwd: dir.path, env: env)
        #expect(second.status == 0)
        #expect(files(dir.file("spool/done")) == ["a.csv", "a.csv.1"])
        #expect(try sandbox.accepted().count == stats.valid - stats.duplicates)
        let ledger = try SQLiteLedger(path: dir.file("spool/state.sqlite"))
        let jobs = try ledger.jobs()
        #expect(jobs.count == 2)
        #expect(jobs.contains { $0.repeatOf != nil })
    }
}

@Suite("Spool: when files are claimed, and where they go")
struct SpoolFilingTests {
    @Test("a file closed and reopened (written in pieces) is claimed only once it has not changed for settle after its last close")
    func settleAfterClose() throws {
        let dir = TempDir()
        let spool = try Spool(root: dir.file("spool"))
        var now = 100.0
        let watcher = InboxWatcher(spool: spool, settle: 3, clock: { now })
        #expect(watcher.ready(timeout: 0).isEmpty)
        let path = dir.file("spool/inbox/append.csv")
        dir.write("spool/inbox/append.csv", "recipient,sender,message\n9876543210,MOBTXT,One\n")  // written and closed
        #expect(watcher.ready(timeout: 0).isEmpty, "claimed at its first close")
        now += 1
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("9876543211,MOBTXT,Two\n".utf8))
        try handle.close()
        #expect(watcher.ready(timeout: 0).isEmpty)
        now += 2.9
        #expect(watcher.ready(timeout: 0).isEmpty, "claimed before settle passed since the last close")
        now += 0.2
        #expect(watcher.ready(timeout: 0) == ["append.csv"])
    }

    @Test("a file linked in (no close, no rename event) that nobody has open is claimed once it settles")
    func linkedIn() throws {
        let dir = TempDir()
        let spool = try Spool(root: dir.file("spool"))
        var now = 0.0
        let watcher = InboxWatcher(spool: spool, settle: 2, clock: { now })
        _ = watcher.ready(timeout: 0)
        let outside = dir.write("elsewhere.csv", "recipient,sender,message\n9876543210,MOBTXT,Hi\n")
        #expect(link(outside, dir.file("spool/inbox/linked.csv")) == 0)
        #expect(watcher.ready(timeout: 0).isEmpty)
        now += 2
        #expect(watcher.ready(timeout: 0) == ["linked.csv"])
    }

    @Test("a file renamed in waits for settle too; without inotify, size and mtime alone decide")
    func settleAfterRename() throws {
        for inotify in [true, false] {
            let dir = TempDir()
            let spool = try Spool(root: dir.file("spool"))
            var now = 0.0
            let watcher = InboxWatcher(spool: spool, settle: 2, inotify: inotify, clock: { now })
            _ = watcher.ready(timeout: 0)
            dir.write("spool/inbox/x.csv.part", "recipient,sender,message\n9876543210,MOBTXT,Hi\n")
            rename(dir.file("spool/inbox/x.csv.part"), dir.file("spool/inbox/x.csv"))
            #expect(watcher.ready(timeout: 0).isEmpty)
            now += 1
            #expect(watcher.ready(timeout: 0).isEmpty)
            now += 1
            #expect(watcher.ready(timeout: 0) == ["x.csv"])
        }
    }

    @Test("three failed files of one name each keep their own reason: append.csv, append.csv.1, append.csv.2")
    func failedReasons() async throws {
        let dir = TempDir()
        var config = PipelineConfig()
        config.watch.root = dir.file("spool")
        config.watch.settle = 0
        var options = RunOptions()
        options.dryRun = true
        options.now = testNow
        let contents = ["", "name,city\nAsha,Pune\n", recipientCSV(["12,MOBTXT,Hi,T", "34,MOBTXT,Hi,T"])]
        for text in contents {
            dir.write("spool/inbox/append.csv", text)
            let runner = try SpoolRunner(config: config, options: options, progress: SilentProgress())
            #expect(try await runner.drain() == .rejected)
        }
        #expect(files(dir.file("spool/failed")) == ["append.csv", "append.csv.1", "append.csv.1.reason.json",
                                                    "append.csv.2", "append.csv.2.reason.json", "append.csv.reason.json"])
        func reason(_ name: String) -> String? {
            let data = FileManager.default.contents(atPath: dir.file("spool/failed/\(name).reason.json")) ?? Data()
            return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["reject_reason"] as? String
        }
        #expect(reason("append.csv") == "no_rows")
        #expect(reason("append.csv.1") == "missing_column")
        #expect(reason("append.csv.2") == "too_many_invalid")
        #expect(try String(contentsOfFile: dir.file("spool/failed/append.csv.1"), encoding: .utf8) == contents[1])
    }
}
