import Foundation
import RecipientGenerator
import Synchronization
import Testing
@testable import SMSBatch
@testable import SMSBatchMetrics
@testable import SMSBatchSandbox

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The samples of a Prometheus text exposition, by `name{labels}` as written.
func prometheusSamples(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        out[String(line[..<space])] = value
    }
    return out
}

/// The sum of every sample of `name` (all its label sets).
func total(_ samples: [String: Double], _ name: String) -> Double {
    samples.filter { $0.key == name || $0.key.hasPrefix(name + "{") }.values.reduce(0, +)
}

/// A GET answered with its status and body (any status: the body of a 503 too).
func httpGet(_ url: String, method: String = "GET") throws -> (status: Int, body: String) {
    final class Box: @unchecked Sendable { var status = 0; var data = Data(); var error: Error? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    URLSession.shared.dataTask(with: request) { data, response, error in
        box.status = (response as? HTTPURLResponse)?.statusCode ?? 0
        box.data = data ?? Data()
        box.error = error
        done.signal()
    }.resume()
    if done.wait(timeout: .now() + 15) == .timedOut { throw URLError(.timedOut) }
    if let e = box.error { throw e }
    return (box.status, String(decoding: box.data, as: UTF8.self))
}

@Suite("Metrics: Prometheus names, counts that equal the summaries, /healthz")
struct MetricsTests {
    @Test("a job's rows by outcome add up to its rows, rejects by reason and duplicates by kind equal summary.json, requests equal the ledger's")
    func jobCounts() async throws {
        let dir = TempDir()
        let provider = try TestProvider { $0.failRate = 0.3; $0.seed = 11 }
        var config = provider.config()
        config.watch.root = dir.file("spool")
        config.send.maxAttempts = 10
        config.send.nodesPerRequest = 20
        let exporter = PrometheusExporter()
        let path = dir.file("r.csv")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        _ = try generateRecipients(GeneratorOptions(rows: 600, seed: 5, invalidShare: 0.1, duplicateShare: 0.05, mixProblems: true), to: fd)
        close(fd)
        let job = try await sendJob(path, config: config, in: dir, metrics: exporter.metrics)
        let s = job.summary
        #expect(s.submitted > 0 && s.invalid > 0 && s.duplicates > 0)
        let m = prometheusSamples(exporter.text())
        #expect(total(m, "smsbatch_rows_total") == Double(s.rows))
        #expect(m["smsbatch_rows_total{outcome=\"rejected\"}"] == Double(s.invalid))
        #expect(m["smsbatch_rows_total{outcome=\"duplicate\"}"] == Double(s.duplicates))
        #expect(m["smsbatch_rows_total{outcome=\"submitted\"}"] == Double(s.submitted))
        #expect(m["smsbatch_rows_total{outcome=\"failed\"}"] == Double(s.failed))
        for (reason, n) in s.invalidByReason {
            #expect(m["smsbatch_rejected_rows_total{reason=\"\(reason.code)\"}"] == Double(n), "\(reason.code)")
        }
        for (kind, n) in s.duplicatesByReason { #expect(m["smsbatch_duplicate_rows_total{kind=\"\(kind)\"}"] == Double(n), "\(kind)") }
        #expect(m["smsbatch_files_finished_total{outcome=\"done\"}"] == 1)
        // Every POST is one intent in the ledger; the sandbox failed some with 500, so some
        // were retries of the same rows.
        let ledger = try LedgerStore.open(config)
        let ledgerRequests = Double(try ledger.sendCounts(jobID: s.job).total.requests)
        #expect(total(m, "smsbatch_send_requests_total") == ledgerRequests)
        #expect((m["smsbatch_send_requests_total{code=\"500\"}"] ?? 0) > 0)
        #expect(m["smsbatch_send_retries_total"] == ledgerRequests - Double(s.plannedRequests))
        #expect(m["smsbatch_send_request_duration_seconds_count"] == ledgerRequests)
        #expect((m["smsbatch_ledger_commit_duration_seconds_count"] ?? 0) >= 2 * ledgerRequests, "an intent and an answer per request")
        #expect(m["smsbatch_job_rows_pending"] == 0)
        #expect(m["smsbatch_lookup_requests_total{code=\"200\"}"] == 1, "auth/me")
    }

    @Test("names follow Prometheus conventions, every metric has HELP, and no label holds a number, a message or the token")
    func conventions() async throws {
        let dir = TempDir()
        let provider = try TestProvider()
        let exporter = PrometheusExporter()
        let valid = (0..<20).map { "98765432\(10 + $0),MOBTXT,Secret offer \($0),T" }
        let path = dir.write("a.csv", recipientCSV(valid + ["12,MOBTXT,Hi,T", "9876543210,MOBTXT,Secret offer 0,T"]))
        let job = try await sendJob(path, config: provider.config(), in: dir, metrics: exporter.metrics)
        #expect(job.summary.submitted == 20)
        let text = exporter.text()
        #expect(!text.contains(provider.token))
        #expect(!text.contains("9876543210") && !text.contains("Secret"))
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            }
        }
        #expect(Set(types.keys) == Set(PipelineMetrics.help.keys), "every metric is exported, with its HELP")
        for (name, type) in types {
            #expect(name.wholeMatch(of: /smsbatch_[a-z_]+/) != nil, "\(name)")
            #expect(text.contains("# HELP \(name) "), "\(name) has no HELP")
            switch type {
            case "counter": #expect(name.hasSuffix("_total"), "\(name)")
            case "histogram": #expect(name.hasSuffix("_seconds"), "\(name)")
            default: #expect(!name.hasSuffix("_total"), "\(name)")
            }
        }
        // Label values come from fixed sets: words for outcomes, reason codes and kinds; three
        // digits for an HTTP status (`code`); a bucket bound for a histogram (`le`).
        let labels = text.matches(of: /([a-z_]+)="([^"]*)"/).map { (String($0.output.1), String($0.output.2)) }
        #expect(!labels.isEmpty)
        for (name, value) in labels {
            switch name {
            case "le": #expect(value.wholeMatch(of: /[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?|\+Inf/) != nil, "le=\(value)")
            case "code": #expect(value.wholeMatch(of: /[1-5][0-9]{2}|no_answer/) != nil, "code=\(value)")
            default: #expect(value.wholeMatch(of: /[a-z][a-z_]*(utf8)?/) != nil, "\(name)=\(value)")
            }
        }
    }

    @Test("429s: the seconds the sender was held back are counted once however many requests met them, on the limiter's clock")
    func rateLimitedWait() async {
        let clock = VirtualClock()
        let added = Locked(0.0)
        var waited: Double { added.withLock { $0 } }
        let limiter = RateLimiter(perMinute: 0, clock: clock) { s in added.withLock { $0 += s } }
        await limiter.pause(for: 5)
        clock.advance(1)
        await limiter.pause(for: 3)  // ends inside the first pause: adds nothing
        #expect(waited == 5)
        await limiter.pause(for: 10)  // until 11 s after the first: 6 s more
        #expect(waited == 11)
        clock.advance(20)
        await limiter.pause(for: 2)
        #expect(waited == 13)
    }

    @Test("a 429 storm shows in the metrics: requests by status as the provider answered them, and the seconds waited")
    func stormCounted() async throws {
        let dir = TempDir()
        let clock = VirtualClock()
        let provider = try TestProvider { $0.rateLimit = 30; $0.clock = clock }
        let outputs = try writeQueue(rows: 2...601, in: dir)
        var config = provider.config().send
        config.requestsPerMinute = 120
        config.nodesPerRequest = 10
        config.concurrency = 4
        config.maxAttempts = 20
        let exporter = PrometheusExporter()
        let client = ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: .header, timeout: 5, concurrency: 4,
                                    metrics: exporter.metrics)
        let sender = Sender(config: config, jobID: "job-429", client: client, time: clock, seed: 7, metrics: exporter.metrics)
        let outcome = try await sender.run(queue: try SendQueueReader(path: outputs.path(JobOutputs.queueName)), outputs: outputs)
        #expect(outcome.submitted == 600)
        let m = prometheusSamples(exporter.text())
        let arrivals = provider.server.arrivals
        #expect(arrivals.count > 60, "some requests must have met a 429")
        #expect(m["smsbatch_send_requests_total{code=\"200\"}"] == 60)
        #expect(m["smsbatch_send_requests_total{code=\"429\"}"] == Double(arrivals.count - 60))
        #expect(m["smsbatch_send_retries_total"] == Double(arrivals.count - 60))
        let starts = await sender.limiter.startLog
        let waited = try #require(m["smsbatch_rate_limited_wait_seconds_total"])
        #expect(waited > 0 && waited <= starts.last! - starts.first!)
    }

    @Test("a stopped job counts as interrupted, and its rows only once it ends for good")
    func interruptedOnce() {
        let exporter = PrometheusExporter()
        var s = JobSummary()
        s.job = "j1"
        s.rows = 10
        s.valid = 10
        s.status = .interrupted
        exporter.metrics.jobEnded(s, fileFailed: false)
        var m = prometheusSamples(exporter.text())
        #expect(m["smsbatch_files_interrupted_total"] == 1)
        #expect(total(m, "smsbatch_rows_total") == 0)
        s.status = .completed
        s.submitted = 10
        exporter.metrics.jobEnded(s, fileFailed: false)
        m = prometheusSamples(exporter.text())
        #expect(m["smsbatch_rows_total{outcome=\"submitted\"}"] == 10)
        #expect(total(m, "smsbatch_files_finished_total") == 1)
    }

    @Test("a partial job resumed in the same process adds only what grew: its rows are not counted twice")
    func resumedOnce() {
        let exporter = PrometheusExporter()
        var s = JobSummary()
        s.job = "j2"
        s.rows = 12
        s.valid = 10
        s.invalid = 2
        s.invalidByReason = [.invalidRecipient: 2]
        s.submitted = 7
        s.failed = 3
        s.status = .partial
        exporter.metrics.jobEnded(s, fileFailed: true)
        // The file dropped again: the failed rows go through.
        s.submitted = 10
        s.failed = 0
        s.status = .completed
        exporter.metrics.jobEnded(s, fileFailed: false)
        let m = prometheusSamples(exporter.text())
        #expect(m["smsbatch_rows_total{outcome=\"submitted\"}"] == 10)
        #expect(m["smsbatch_rows_total{outcome=\"failed\"}"] == 3, "they did fail, once")
        #expect(m["smsbatch_rows_total{outcome=\"rejected\"}"] == 2)
        #expect(m["smsbatch_rejected_rows_total{reason=\"invalid_recipient\"}"] == 2)
        #expect(m["smsbatch_files_finished_total{outcome=\"failed\"}"] == 1)
        #expect(m["smsbatch_files_finished_total{outcome=\"done\"}"] == 1)
    }

    @Test("inbox files are counted when scraped, not when the loop last turned")
    func inboxAtScrape() {
        let exporter = PrometheusExporter()
        let waiting = Locked(3)
        exporter.metrics.countInbox { waiting.withLock { $0 } }
        #expect(prometheusSamples(exporter.text())["smsbatch_inbox_files"] == 3)
        waiting.withLock { $0 = 0 }
        #expect(prometheusSamples(exporter.text())["smsbatch_inbox_files"] == 0)
    }

    @Test("Retry-After is seconds, finite, at most an hour", arguments: [
        ("5", 5.0), ("0.5", 0.5), ("inf", nil), ("nan", nil), ("-3", nil), ("31536000", 3600.0), ("Wed, 21 Oct 2015 07:28:00 GMT", nil),
    ] as [(String, Double?)])
    func retryAfter(value: String, seconds: Double?) {
        #expect(HTTPReply.retryAfterSeconds(value) == seconds)
    }

    @Test("the metrics server: /metrics in text format 0.0.4, /healthz 200 or 503 with the reason, 404 and 405 for the rest")
    func server() throws {
        let exporter = PrometheusExporter()
        let problem = Locked<String?>(nil)
        let server = try MetricsServer(listen: "127.0.0.1", port: 0, exporter: exporter) { problem.withLock { $0 } }
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"
        let metrics = try httpGet(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("# TYPE smsbatch_rows_total counter"))
        let healthy = try httpGet(base + "/healthz")
        #expect(healthy.status == 200 && healthy.body == "ok\n")
        problem.withLock { $0 = "the ledger cannot be written: database is locked" }
        let sick = try httpGet(base + "/healthz")
        #expect(sick.status == 503)
        #expect(sick.body.contains("database is locked"))
        #expect(try httpGet(base + "/other").status == 404)
        #expect(try httpGet(base + "/metrics", method: "POST").status == 405)
    }

    @Test("the loop is alive only while watching; the ledger probe fails while another connection holds the write lock, and creates nothing")
    func healthProbes() throws {
        let metrics = PipelineMetrics(factory: PrometheusExporter().metrics.factory)
        #expect(metrics.loopProblem() != nil)
        metrics.setWatching(true)
        #expect(metrics.loopProblem() == nil)
        #expect(metrics.loopProblem(stale: -1) != nil, "no sign of life within the bound")
        metrics.setWatching(false)
        #expect(metrics.loopProblem() != nil)

        let dir = TempDir()
        var config = PipelineConfig()
        config.state.path = dir.file("state.sqlite")
        #expect(LedgerStore.writeProblem(config) != nil)
        #expect(!FileManager.default.fileExists(atPath: config.statePath))
        _ = try LedgerStore.open(config)
        #expect(LedgerStore.writeProblem(config) == nil)
        let other = try SQLiteDatabase(path: config.statePath)
        try other.execute("BEGIN EXCLUSIVE")
        let locked = LedgerStore.writeProblem(config, timeout: 0.2)
        #expect(locked?.contains("cannot be written") == true, "\(locked ?? "nil")")
        try other.execute("ROLLBACK")
        #expect(LedgerStore.writeProblem(config) == nil)
    }
}

@Suite("Metrics of real runs: watch --metrics over three files, --metrics-file", .serialized, .tags(.process), .notInFastRuns)
struct MetricsProcessTests {
    private func spool() -> TempDir {
        let dir = TempDir()
        dir.write("pipeline.yaml", """
            watch:
              root: ./spool
              settle: 1s
            dedupe:
              window: 0
            """)
        return dir
    }

    private func generate(_ path: String, rows: Int, seed: UInt64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        _ = try generateRecipients(GeneratorOptions(rows: rows, seed: seed, invalidShare: 0.05, duplicateShare: 0.05, mixProblems: true), to: fd)
    }

    /// Every summary.json under `dir`'s outbox.
    private func summaries(_ outbox: String) -> [JSONValue] {
        ((try? FileManager.default.contentsOfDirectory(atPath: outbox)) ?? []).compactMap {
            FileManager.default.contents(atPath: outbox + "/" + $0 + "/summary.json").flatMap(JSONValue.parse)
        }
    }

    private func sum(_ summaries: [JSONValue], _ key: String) -> Double {
        Double(summaries.reduce(0) { $0 + ($1[key]?.text.flatMap(Int.init) ?? 0) })
    }

    @Test("watch --metrics over 3 files: counters never go down while it works, equal the three summaries at the end; /healthz turns 503 while the ledger cannot be written")
    func watchOverThreeFiles() throws {
        let dir = spool()
        let token = "metrics-secret-" + UUID().uuidString
        let watch = try Background(["watch", "--metrics", "127.0.0.1:0"], cwd: dir.path, env: ["SMSBATCH_TOKEN": token])
        var port = 0
        #expect(eventually(timeout: 20) {
            if let r = watch.stderr.firstMatch(of: /metrics on http:\/\/127\.0\.0\.1:([0-9]+)\/metrics/) { port = Int(r.output.1)! }
            return port > 0 && watch.stderr.contains("watching")
        }, "\(watch.stderr)")
        let base = "http://127.0.0.1:\(port)"
        var m = prometheusSamples(try httpGet(base + "/metrics").body)
        #expect(m["smsbatch_files_claimed_total"] == 0)
        #expect(try httpGet(base + "/healthz").status == 200)

        let staging = dir.file("staging")
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        for (i, rows) in [300, 1_200, 2_500].enumerated() {
            try generate(staging + "/f\(i).csv", rows: rows, seed: UInt64(40 + i))
            rename(staging + "/f\(i).csv", dir.file("spool/inbox/f\(i).csv"))
        }
        // Scraped while it works: counters only grow.
        var last: [String: Double] = [:]
        let finished = eventually(timeout: 60) {
            guard let text = try? httpGet(base + "/metrics").body else { return false }
            let now = prometheusSamples(text)
            for (k, v) in last where k.contains("_total") { #expect(now[k, default: 0] >= v, "\(k) went down") }
            last = now
            return total(now, "smsbatch_files_finished_total") == 3
        }
        #expect(finished, "\(watch.stderr)")
        let all = summaries(dir.file("spool/outbox"))
        #expect(all.count == 3)
        m = prometheusSamples(try httpGet(base + "/metrics").body)
        #expect(m["smsbatch_files_claimed_total"] == 3)
        #expect(m["smsbatch_files_finished_total{outcome=\"done\"}"] == 3)
        #expect(total(m, "smsbatch_rows_total") == sum(all, "rows"))
        #expect(m["smsbatch_rows_total{outcome=\"rejected\"}"] == sum(all, "invalid"))
        #expect(m["smsbatch_rows_total{outcome=\"duplicate\"}"] == sum(all, "duplicates"))
        #expect(m["smsbatch_rows_total{outcome=\"submitted\"}"] == sum(all, "submitted"))
        #expect(m["smsbatch_rows_total{outcome=\"failed\"}"] == sum(all, "failed"))
        #expect(total(m, "smsbatch_rejected_rows_total") == sum(all, "invalid"))
        #expect(total(m, "smsbatch_send_requests_total") == sum(all, "requests"))
        #expect(m["smsbatch_inbox_files"] == 0)
        #expect(m["smsbatch_job_rows_pending"] == 0)
        var reasons: [String: Double] = [:]
        for s in all {
            if case .object(let byReason)? = s["invalid_by_reason"] {
                for (code, n) in byReason { reasons[code, default: 0] += Double(n.text.flatMap(Int.init) ?? 0) }
            }
        }
        for (code, n) in reasons { #expect(m["smsbatch_rejected_rows_total{reason=\"\(code)\"}"] == n, "\(code)") }
        #expect(!(try httpGet(base + "/metrics").body.contains(token)))

        // Another connection takes the ledger's write lock: the watcher cannot record.
        let other = try SQLiteDatabase(path: dir.file("spool/state.sqlite"))
        try other.execute("BEGIN EXCLUSIVE")
        let sick = try httpGet(base + "/healthz")
        #expect(sick.status == 503)
        #expect(sick.body.contains("state.sqlite: the ledger cannot be written"), "\(sick.body)")
        try other.execute("ROLLBACK")
        #expect(try httpGet(base + "/healthz").status == 200)

        watch.signal(SIGTERM)
        #expect(watch.wait(timeout: 20) == 0)
        #expect((try? httpGet(base + "/healthz")) == nil, "the server stops with the watcher")
    }

    @Test("watch --dry-run --metrics on a new spool is healthy (a dry run never makes a ledger); an IPv6 address without brackets is refused")
    func dryRunHealth() throws {
        let dir = spool()
        let watch = try Background(["watch", "--dry-run", "--metrics", "127.0.0.1:0"], cwd: dir.path)
        var port = 0
        #expect(eventually(timeout: 20) {
            if let r = watch.stderr.firstMatch(of: /metrics on http:\/\/127\.0\.0\.1:([0-9]+)\/metrics/) { port = Int(r.output.1)! }
            return port > 0 && watch.stderr.contains("watching")
        }, "\(watch.stderr)")
        let health = try httpGet("http://127.0.0.1:\(port)/healthz")
        #expect(health.status == 200, "\(health.body)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("spool/state.sqlite")))
        watch.signal(SIGTERM)
        #expect(watch.wait(timeout: 20) == 0)
        let bad = try smsbatch(["watch", "--metrics", "::1:9464"], cwd: dir.path)
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--metrics: '::1:9464' is not HOST:PORT"), "\(bad.stderr)")
    }

    @Test("run and drain --metrics-file: the file is written whole, holds the job's counts, and no temporary file is left beside it")
    func metricsFile() throws {
        let dir = spool()
        try generate(dir.file("a.csv"), rows: 400, seed: 3)
        let run = try smsbatch(["run", "--metrics-file", "metrics/run.prom", "--json", "a.csv"], cwd: dir.path)
        // The metrics folder does not exist: a warning naming the file; the job itself is fine.
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("metrics/run.prom: warning: metrics not written"), "\(run.stderr)")
        try FileManager.default.createDirectory(atPath: dir.file("metrics"), withIntermediateDirectories: true)
        try generate(dir.file("b.csv"), rows: 400, seed: 4)
        let ok = try smsbatch(["run", "--metrics-file", "metrics/run.prom", "--json", "b.csv"], cwd: dir.path)
        #expect(ok.status == 0, "\(ok.stderr)")
        let summary = try #require(JSONValue.parse(Data(ok.stdout.utf8)))
        let text = try String(contentsOfFile: dir.file("metrics/run.prom"), encoding: .utf8)
        let m = prometheusSamples(text)
        #expect(total(m, "smsbatch_rows_total") == Double(summary["rows"]?.text.flatMap(Int.init) ?? -1))
        #expect(m["smsbatch_rows_total{outcome=\"submitted\"}"] == Double(summary["submitted"]?.text.flatMap(Int.init) ?? -1))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("metrics")) == ["run.prom"])

        try FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
        try generate(dir.file("spool/inbox/c.csv"), rows: 500, seed: 5)
        try generate(dir.file("spool/inbox/d.csv"), rows: 700, seed: 6)
        // Past `settle` (1 s): drain takes them at once.
        let old = Date().addingTimeInterval(-10)
        for f in ["c.csv", "d.csv"] { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir.file("spool/inbox/" + f)) }
        let drain = try smsbatch(["drain", "--metrics-file", "metrics/drain.prom"], cwd: dir.path)
        #expect(drain.status == 0, "\(drain.stderr)")
        let d = prometheusSamples(try String(contentsOfFile: dir.file("metrics/drain.prom"), encoding: .utf8))
        #expect(d["smsbatch_files_claimed_total"] == 2)
        #expect(total(d, "smsbatch_rows_total") == 1_200)
        #expect(d["smsbatch_inbox_files"] == 0)
    }
}
