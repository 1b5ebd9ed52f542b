import Foundation
import Synchronization
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// A standalone sandbox for one test, with its own token in its own environment variable.
final class TestProvider {
    let server: SandboxServer
    let tokenEnv: String
    let token: String

    init(_ configure: (inout SandboxOptions) -> Void = { _ in }) throws {
        token = "tok-" + UUID().uuidString
        tokenEnv = "SMSBATCH_TEST_" + UUID().uuidString.replacingOccurrences(of: "-", with: "_")
        TestEnvironment.set(tokenEnv, token)
        var options = SandboxOptions(token: token)
        configure(&options)
        server = SandboxServer(options: options)
        _ = try server.start()
    }

    deinit {
        server.stop()
        TestEnvironment.remove(tokenEnv)
    }

    /// A config that sends to this sandbox.
    func config(_ base: PipelineConfig = PipelineConfig()) -> PipelineConfig {
        var c = base
        c.send.endpoint = server.endpoint
        c.send.tokenEnv = tokenEnv
        c.send.requestsPerMinute = 1000
        c.send.timeout = 5
        return c
    }
}

/// Runs one file through the whole pipeline, sending.
/// `ledger`: the ledger to use (an `InMemoryLedger` in the fast tests); by default SQLite in `dir`.
func sendJob(_ file: String, config: PipelineConfig, in dir: TempDir, now: Int64 = testNow, force: Bool = false,
             ledger: (any Ledger)? = nil, time: (any MonotonicClock)? = nil, metrics: PipelineMetrics = .none) async throws -> JobOutput {
    var config = config
    // Each test keeps its spool and ledger in its own folder.
    if config.watch.root == PipelineConfig().watch.root { config.watch.root = dir.file("spool") }
    var options = RunOptions.inProcess()
    options.now = now
    options.force = force
    options.jitterSeed = 1
    options.metrics = metrics
    if let time { options.time = time }
    let out = dir.file("out-" + UUID().uuidString.prefix(8))
    let runner = JobRunner(config: config, options: options, progress: SilentProgress(), ledger: ledger)
    return JobOutput(result: try await runner.run(path: file, outDir: out), dir: out)
}

/// A config sending to a hand-written test server on `port`, with a token in `tokenEnv`.
func serverConfig(port: UInt16, path: String = "/api/v2/", tokenEnv: String) -> PipelineConfig {
    var config = PipelineConfig()
    config.send.endpoint = "http://127.0.0.1:\(port)\(path)"
    config.send.tokenEnv = tokenEnv
    TestEnvironment.set(tokenEnv, "whatever")
    return config
}

/// A send queue of `rows` (one batch, product T, at once) as the split stage writes it, in
/// `dir/out`; `number` may replace a row's recipient.
func writeQueue(rows: ClosedRange<Int>, in dir: TempDir, number: (Int) -> PhoneNumber? = { _ in nil }) throws -> JobOutputs {
    let outputs = try JobOutputs(config: PipelineConfig(), outDir: dir.file("out"))
    var queue = try SendQueueWriter(path: outputs.path(JobOutputs.queueName))
    for row in rows {
        let recipient = number(row) ?? PhoneNumber(919_876_543_200 + UInt64(row))
        let sender = Array("MOBTXT".utf8), message = Array("Hello \(row)".utf8)
        try sender.withUnsafeBufferPointer { s in
            try message.withUnsafeBufferPointer { m in
                try queue.append(row: row, batch: 1, product: Array("T".utf8), encoding: .gsm7, segments: 1, recipient: recipient,
                                 scheduledAt: 0, digest: MessageDigest(high: UInt64(row), low: 1), sender: s, message: m,
                                 templateId: .init(start: nil, count: 0), entityId: .init(start: nil, count: 0))
            }
        }
    }
    try queue.commit()
    return outputs
}

@Suite("Send: to the sandbox over loopback HTTP")
struct SendTests {
    @Test("every unique valid row is submitted once, with the provider's message id")
    func happyPath() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        let (path, expected) = try generated(GeneratorOptions(rows: 3000, seed: 21), in: dir)
        var config = provider.config()
        config.split.batchSize = 1000
        let out = try await sendJob(path, config: config, in: dir, ledger: InMemoryLedger())
        #expect(out.summary.status == .completed)
        #expect(out.result.exitStatus == .ok)
        #expect(out.summary.submitted == expected.valid - expected.duplicates)
        let rows = out.batchRows
        #expect(Set(rows.column("status")) == ["submitted"])
        #expect(rows.column("message_id").allSatisfy { $0.contains(":") })
        let accepted = provider.server.accepted
        #expect(accepted.count == out.summary.toSend)
        #expect(accepted.repeats == 0)
        #expect(accepted.customs == Set(rows.column("row").map { "\(out.summary.job):\($0)" }))
        #expect(!FileManager.default.fileExists(atPath: out.dir + "/" + JobOutputs.queueName))
    }

    @Test("with 30% 5xx and 10% dropped-after-accept, a 20,000-row file is submitted exactly once, and nothing is reported submitted that the sandbox did not accept")
    func faults() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.failRate = 0.3; $0.dropRate = 0.1; $0.seed = 42 }
        let (path, _) = try generated(GeneratorOptions(rows: 20_000, seed: 22), in: dir)
        var config = provider.config()
        config.send.maxAttempts = 10
        let out = try await sendJob(path, config: config, in: dir)
        let accepted = provider.server.accepted
        #expect(out.summary.status == .completed)
        #expect(accepted.repeats == 0)
        #expect(accepted.count == out.summary.toSend)
        let submitted = out.batchRows.rows.filter { $0[4] == "submitted" }.map { "\(out.summary.job):\($0[0])" }
        #expect(Set(submitted) == accepted.customs)
        #expect(submitted.count == out.summary.toSend)
    }

    @Test("a wrong token: exit 77, nothing accepted, nothing marked submitted")
    func wrongToken() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        TestEnvironment.set(provider.tokenEnv, "not-the-token")
        let (path, _) = try generated(GeneratorOptions(rows: 200, seed: 23), in: dir)
        let out = try await sendJob(path, config: provider.config(), in: dir)
        #expect(out.result.exitStatus == .credentials)
        #expect(provider.server.accepted.count == 0)
        #expect(!out.batchRows.column("status").contains("submitted"))
        #expect(out.summary.submitted == 0)
    }

    @Test("a 422 naming some nodes fails only those rows, with the sandbox's message; the rest are submitted")
    func partialValidation() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        // A queue as the split stage writes it, with two numbers the provider refuses.
        let outputs = try writeQueue(rows: 2...11, in: dir) { $0 == 4 || $0 == 9 ? PhoneNumber(12345) : nil }
        let config = provider.config()
        let client = ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: .header, timeout: 5, concurrency: 2)
        let sender = Sender(config: config.send, jobID: "job-422", client: client)
        let outcome = try await sender.run(queue: try SendQueueReader(path: outputs.path(JobOutputs.queueName)), outputs: outputs)
        #expect(outcome.submitted == 8)
        #expect(outcome.failed == 2)
        let table = CSVTable(path: outputs.path(JobOutputs.batchName(1)))
        let failed = table.rows.filter { $0[4] == "failed" }
        #expect(failed.map { $0[0] } == ["4", "9"])
        #expect(failed.allSatisfy { $0[6] == "422" && !$0[8].isEmpty })
        #expect(provider.server.accepted.count == 8)
    }

    @Test("lookups (auth/me, sms/status) count against status_requests_per_minute, never against the send rate")
    func lookupsHaveTheirOwnRate() async throws {
        let dir = TempDir()
        // Drops make the sender look rows up; sends and lookups together reach the sandbox.
        let provider = try TestProvider { $0.dropRate = 0.5; $0.seed = 3 }
        let outputs = try writeQueue(rows: 2...21, in: dir)
        var config = provider.config().send
        config.nodesPerRequest = 2
        config.maxAttempts = 10
        let client = ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: .header, timeout: 5, concurrency: 2)
        let sender = Sender(config: config, jobID: "job-rates", client: client)
        try await sender.checkCredentials()
        let outcome = try await sender.run(queue: try SendQueueReader(path: outputs.path(JobOutputs.queueName)), outputs: outputs)
        #expect(outcome.submitted == 20)
        let sends = await sender.limiter.granted, lookups = await sender.lookupLimiter.granted
        #expect(sends >= 10)
        #expect(lookups > 1, "auth/me and the lookups after drops")
        #expect(sends + lookups == provider.server.arrivals.count)
        #expect(provider.server.accepted.count == 20)
    }

    @Test("auth/me answering 404 means send.endpoint is wrong: exit 78 at once, no retry, and the message names /api/v2/")
    func wrongEndpoint() async throws {
        let dir = TempDir()
        let requests = Locked(0)
        let server = HTTPServer { _ in
            requests.withLock { $0 += 1 }
            return .respond(status: 404, headers: [("Content-Type", "application/json")], body: Array(#"{"status":404,"message":"Not Found"}"#.utf8))
        }
        let port = try server.start()
        defer { server.stop() }
        let config = serverConfig(port: port, path: "/", tokenEnv: "SMSBATCH_TEST_404_TOKEN")
        let out = try await sendJob(dir.write("a.csv", recipientCSV(["9876543210,MOBTXT,Hello,T"])), config: config, in: dir)
        #expect(out.result.exitStatus == .config)
        #expect(requests.withLock { $0 } == 1)
        #expect(out.summary.warnings.contains { $0.contains("send.endpoint") && $0.contains("/api/v2/") })
        #expect(out.batchRows.column("error_code") == ["NOT_SENT"])
    }

    @Test("a file that changes after it was taken, before the first request, is rejected whole and nothing is sent")
    func changedBeforeSending() async throws {
        let dir = TempDir()
        let path = dir.write("a.csv", recipientCSV(["9876543210,MOBTXT,Hello,T", "9876543211,MOBTXT,Hello,T"]))
        let sends = Locked(0)
        // The provider's token check is the moment between reading the file and sending:
        // the uploader appends its next piece just then.
        let server = HTTPServer { request in
            if request.path.hasSuffix("auth/me") {
                let handle = FileHandle(forWritingAtPath: path)!
                handle.seekToEndOfFile()
                handle.write(Data("9876543212,MOBTXT,Hello,T\n".utf8))
                try? handle.close()
                return .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"status":200}"#.utf8))
            }
            sends.withLock { $0 += 1 }
            return .respond(status: 500, headers: [], body: [])
        }
        let port = try server.start()
        defer { server.stop() }
        let config = serverConfig(port: port, path: "/api/v2/", tokenEnv: "SMSBATCH_TEST_CHANGED_TOKEN")
        let out = try await sendJob(path, config: config, in: dir)
        #expect(out.summary.status == .rejected)
        #expect(out.summary.rejectReason == .unreadable)
        #expect(out.summary.rejectDetail?.contains("changed after it was taken") == true)
        #expect(out.result.exitStatus == .rejected)
        #expect(sends.withLock { $0 } == 0)
        #expect(out.batchFiles.isEmpty)
    }

    @Test("a partial job resumed with a refused token keeps its submitted rows: batch files and counts add up to to_send")
    func resumeRefused() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.failRate = 0.5; $0.seed = 8 }
        let (path, _) = try generated(GeneratorOptions(rows: 2000, seed: 26, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.maxAttempts = 1
        config.send.nodesPerRequest = 100
        let out = dir.file("out")
        // The ledger lives in memory across both runs: resume needs nothing more of it.
        let ledger = InMemoryLedger()
        func run() async throws -> JobOutput {
            var options = RunOptions.inProcess()
            options.now = testNow
            let runner = JobRunner(config: config, options: options, progress: SilentProgress(), ledger: ledger)
            return JobOutput(result: try await runner.run(path: path, outDir: out), dir: out)
        }
        let first = try await run()
        #expect(first.summary.status == .partial)
        let submitted = first.summary.submitted
        #expect(submitted > 0 && first.summary.failed > 0)
        TestEnvironment.set(provider.tokenEnv, "not-the-token")
        let second = try await run()
        #expect(second.result.exitStatus == .credentials)
        #expect(second.summary.submitted == submitted)
        #expect(second.summary.submitted + second.summary.failed + second.summary.inDoubt + second.summary.pending == second.summary.toSend)
        #expect(second.batchRows.column("status").filter { $0 == "submitted" }.count == submitted)
    }

    @Test("a resumed job whose file is touched before its first request stops (interrupted), never rejected: given again it finishes, nothing twice")
    func resumedFileTouched() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.failRate = 0.5; $0.seed = 9 }
        let (path, stats) = try generated(GeneratorOptions(rows: 2000, seed: 27, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.maxAttempts = 1
        config.send.nodesPerRequest = 100
        let out = dir.file("out")
        func run(_ config: PipelineConfig) async throws -> JobOutput {
            var options = RunOptions.inProcess()
            options.now = testNow
            let runner = JobRunner(config: config, options: options, progress: SilentProgress())
            return JobOutput(result: try await runner.run(path: path, outDir: out), dir: out)
        }
        #expect(try await run(config).summary.status == .partial)
        // The second run's token check is when the file is touched.
        let server = HTTPServer { _ in
            // `touch`: same bytes, a new mtime.
            var times = [timeval(tv_sec: time(nil) + 3600, tv_usec: 0), timeval(tv_sec: time(nil) + 3600, tv_usec: 0)]
            _ = utimes(path, &times)
            return .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"status":200}"#.utf8))
        }
        let port = try server.start()
        defer { server.stop() }
        var touching = serverConfig(port: port, tokenEnv: provider.tokenEnv + "_T")
        touching.watch.root = config.watch.root
        let second = try await run(touching)
        #expect(second.summary.status == .interrupted)
        #expect(second.summary.rejectReason == nil)
        config.send.maxAttempts = 10
        let third = try await run(config)
        #expect(third.summary.status == .completed)
        #expect(provider.server.accepted.count == stats.valid)
        #expect(provider.server.accepted.repeats == 0)
    }

    @Test("a stop raised mid-send ends the job interrupted, counted from the ledger; run again, it completes and nothing goes twice")
    func stopMidSend() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.sendLatencyMs = 200 }
        let (path, stats) = try generated(GeneratorOptions(rows: 4000, seed: 28, invalidShare: 0, duplicateShare: 0), in: dir)
        var config = provider.config()
        config.send.nodesPerRequest = 100
        config.send.concurrency = 2
        let ledger = InMemoryLedger()
        let out = dir.file("out")
        func run(_ stop: StopSignal) async throws -> JobOutput {
            var options = RunOptions.inProcess()
            options.now = testNow
            let runner = JobRunner(config: config, options: options, progress: SilentProgress(), ledger: ledger, stop: stop)
            return JobOutput(result: try await runner.run(path: path, outDir: out), dir: out)
        }
        let stop = StopSignal()
        let server = provider.server
        let raiser = Task { [server, stop] in
            while server.accepted.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
            stop.raise()
        }
        let first = try await run(stop)
        try await raiser.value
        #expect(first.summary.status == .interrupted)
        #expect(first.result.exitStatus == .ok)
        #expect(first.summary.submitted == provider.server.accepted.count)
        #expect(first.summary.submitted < stats.valid)
        #expect(first.summary.pending == stats.valid - first.summary.submitted)
        let second = try await run(StopSignal())
        #expect(second.summary.status == .completed)
        #expect(provider.server.accepted.count == stats.valid)
        #expect(provider.server.accepted.repeats == 0)
    }

    @Test("the send estimate replays the sender: the rate, requests in flight, answer time and one batch after another")
    func estimate() {
        var send = SendConfig()
        send.requestsPerMinute = 600
        send.concurrency = 4
        // Rate-bound: 40 starts 0.1 s apart.
        #expect(abs(SendEstimate(send).seconds(requestsPerBatch: [40]) - 3.9) < 1e-9)
        // Answer-bound: 10 rounds of 4 requests, 3 s each.
        #expect(abs(SendEstimate(send, latency: 3).seconds(requestsPerBatch: [40]) - 30.3) < 1e-9)
        // A batch waits for the one before: 5 requests need two rounds, each batch.
        #expect(abs(SendEstimate(send, latency: 3).seconds(requestsPerBatch: [5, 5]) - 12.0) < 1e-9)
        send.requestsPerMinute = 0
        #expect(SendEstimate(send).seconds(requestsPerBatch: [1000]) == 0)
    }

    @Test("the token never appears in any output file or message")
    func tokenNeverWritten() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.failRate = 0.2; $0.seed = 5 }
        let (path, _) = try generated(GeneratorOptions(rows: 1500, seed: 24, invalidShare: 0.05), in: dir)
        var config = provider.config()
        config.send.auth = .query
        let out = try await sendJob(path, config: config, in: dir)
        #expect(out.summary.submitted > 0)
        let files = FileManager.default.enumerator(atPath: out.dir)!.compactMap { $0 as? String }
        for f in files {
            let data = FileManager.default.contents(atPath: out.dir + "/" + f) ?? Data()
            #expect(!String(decoding: data, as: UTF8.self).contains(provider.token), "\(f)")
        }
    }

    @Test("a 429 storm: the sender waits Retry-After, its starts never exceed requests_per_minute, and the provider never sees more than it allows")
    func rateLimits() async throws {
        let dir = TempDir()
        // One virtual clock for the sender and the provider's rate window: the storm's
        // minutes of waiting take no real time, and every spacing below is exact.
        let clock = VirtualClock()
        // The provider allows 30 requests a minute; the client is configured for 120.
        let provider = try TestProvider { $0.rateLimit = 30; $0.clock = clock }
        let outputs = try writeQueue(rows: 2...601, in: dir)
        var config = provider.config().send
        config.requestsPerMinute = 120
        config.nodesPerRequest = 10
        config.concurrency = 4
        config.maxAttempts = 20
        let client = ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: .header, timeout: 5, concurrency: 4)
        let sender = Sender(config: config, jobID: "job-429", client: client, time: clock, seed: 7)
        let outcome = try await sender.run(queue: try SendQueueReader(path: outputs.path(JobOutputs.queueName)), outputs: outputs)
        #expect(outcome.submitted == 600)
        #expect(provider.server.accepted.count == 600)
        let arrivals = provider.server.arrivals
        #expect(arrivals.count > 60, "some requests must have met a 429")
        // The client: starts 0.5 s apart at 120 a minute, never more than 120 in a minute.
        let starts = await sender.limiter.startLog
        #expect(starts.count == arrivals.count)
        for (a, b) in zip(starts, starts.dropFirst()) { #expect(b - a >= 0.5, "requests started \(b - a) s apart") }
        for (i, start) in starts.enumerated() { #expect(starts[i...].prefix { $0 - start < 60 }.count <= 120) }
        // The provider allows 30 a minute: having waited each Retry-After, the sender took
        // more than a minute for its 60 sends.
        #expect(starts.last! - starts.first! >= 60)
    }

    @Test("the rate limiter on a virtual clock: starts exactly 60/rpm apart, at most rpm a minute, and a pause holds everyone")
    func limiter() async {
        let clock = VirtualClock()
        let limiter = RateLimiter(perMinute: 3, clock: clock)
        for _ in 0..<4 { await limiter.acquire() }
        var starts = await limiter.startLog
        #expect(abs(starts[1] - starts[0] - 20) < 1e-3 && abs(starts[2] - starts[1] - 20) < 1e-3)
        // The fourth waits until the first leaves the minute.
        #expect(starts[3] - starts[0] >= 60)
        await limiter.pause(for: 100)
        let paused = clock.now()
        await limiter.acquire()
        starts = await limiter.startLog
        #expect(starts[4] >= paused + 100)
    }

    @Test("an HTML login page instead of JSON from auth/me stops the job before anything is sent (exit 77)")
    func htmlLoginPage() async throws {
        let dir = TempDir()
        let sends = Locked(0)
        let server = HTTPServer { request in
            if request.path.hasSuffix("sms/send/json") { sends.withLock { $0 += 1 } }
            return .respond(status: 200, headers: [("Content-Type", "text/html")], body: Array("<html><body>Please log in</body></html>".utf8))
        }
        let port = try server.start()
        defer { server.stop() }
        let config = serverConfig(port: port, path: "/api/v2/", tokenEnv: "SMSBATCH_TEST_HTML_TOKEN")
        let path = dir.write("a.csv", recipientCSV(["9876543210,MOBTXT,Hello,T"]))
        let out = try await sendJob(path, config: config, in: dir)
        #expect(out.result.exitStatus == .credentials)
        #expect(sends.withLock { $0 } == 0)
        #expect(out.batchRows.column("status") == ["failed"])
    }
}
