import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RecipientGenerator
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// A started in-process sandbox with no rate limit of its own (the workers' limits are under
/// test), set up by `configure`, and the token it accepts.
private func startSandbox(_ configure: (inout SandboxOptions) -> Void = { _ in }) throws -> (SandboxServer, String) {
    let token = "tok-" + UUID().uuidString
    var options = SandboxOptions(token: token)
    options.rateLimit = 0
    configure(&options)
    let sandbox = SandboxServer(options: options)
    _ = try sandbox.start()
    return (sandbox, token)
}

/// A spool folder whose workers share the ledger at `url` and send to `endpoint`.
private func workerDir(endpoint: String, url: String, perMinute: Int = 100_000, lease: String = "3s",
                       nodesPerRequest: Int = 500) -> TempDir {
    let dir = TempDir()
    dir.write("pipeline.yaml", """
        send:
          endpoint: \(endpoint)
          nodes_per_request: \(nodesPerRequest)
          requests_per_minute: \(perMinute)
          status_requests_per_minute: 100000
          timeout: 5s
          max_attempts: 10
        watch:
          root: ./spool
          settle: 1s
        split:
          batch_size: 5000
        state:
          url: \(url)
          lease: \(lease)
        """)
    try? FileManager.default.createDirectory(atPath: dir.file("spool/inbox"), withIntermediateDirectories: true)
    return dir
}

/// Drops a generated file into the inbox (written under .part, then renamed in). O_CLOEXEC:
/// a worker another test spawns meanwhile must not inherit the file open for writing, or
/// the inbox would rightly never see it closed.
private func drop(_ dir: TempDir, _ name: String, rows: Int, seed: UInt64) throws {
    let part = dir.file("spool/inbox/\(name).part")
    let fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    _ = try generateRecipients(GeneratorOptions(rows: rows, seed: seed), to: fd)
    close(fd)
    rename(part, dir.file("spool/inbox/\(name)"))
}

/// SIGTERM to every worker once it is watching (one restarted a moment ago may still be
/// starting, and a signal then would end it before its handler is in place), and their exit
/// codes.
private func stopWorkers(_ workers: [Background]) async -> [Int32?] {
    for w in workers {
        _ = await waitUntil(timeout: 120) { w.stderr.contains("watching") || !w.process.isRunning }
        w.signal(SIGTERM)
    }
    return workers.map { $0.wait(timeout: 30) }
}

private func names(_ folder: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
}

/// `to_send` of every job's summary.json in the outbox, by job.
private func toSend(_ dir: TempDir) -> [String: Int] {
    var out: [String: Int] = [:]
    for job in names(dir.file("spool/outbox")) {
        guard let data = FileManager.default.contents(atPath: dir.file("spool/outbox/\(job)/summary.json")),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
        out[job] = (json["to_send"] as? Int) ?? -1
    }
    return out
}

/// `GET sandbox/accepted` of an in-process sandbox.
private func accepted(_ server: SandboxServer, token: String) throws -> (count: Int, repeats: Int) {
    var request = URLRequest(url: URL(string: server.endpoint + "sandbox/accepted")!)
    request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    let json = try JSONSerialization.jsonObject(with: try syncGet(request)) as? [String: Any] ?? [:]
    return (json["count"] as? Int ?? -1, json["repeats"] as? Int ?? -1)
}

@Suite("Several workers on one PostgreSQL ledger", .tags(.process), .notInFastRuns)
struct SeveralWorkersTests {
    @Test("three watch workers, 20 files of 5,000–30,000 rows, 5% dropped answers, each worker SIGKILLed at random (12 kills) and restarted: every file in done/ once, the sandbox has exactly the sum of to_send, no repeat")
    func threeWorkersKilled() async throws {
        let postgres = try PostgresServer.start()
        let url = try postgres.createDatabase()
        let (sandbox, token) = try startSandbox { ($0.dropRate, $0.latencyMs, $0.seed) = (0.05, 5, 13) }
        defer { sandbox.stop() }
        let dir = workerDir(endpoint: sandbox.endpoint, url: url)
        var rng = SplitMix64(seed: 20261203)  // seeded: the same files and kill moments every run
        for i in 0..<20 { try drop(dir, "f\(i).csv", rows: 5_000 + Int(rng.next() % 25_001), seed: 500 + UInt64(i)) }
        let env = ["SMSBATCH_TOKEN": token]
        var workers = try (0..<3).map { _ in try Background(["watch"], cwd: dir.path, env: env) }
        var kills = 0
        var log = ""  // every worker's stderr, the killed ones' too, for a failure's message
        while kills < 12 {
            try await Task.sleep(for: .milliseconds(400 + Int(rng.next() % 1_600)))
            let i = Int(rng.next() % 3)
            workers[i].signal(SIGKILL)
            _ = workers[i].wait(timeout: 5)
            log += "--- worker \(i) killed\n" + workers[i].stderr
            kills += 1
            workers[i] = try Background(["watch"], cwd: dir.path, env: env)
        }
        let finished = await waitUntil(timeout: 300) { names(dir.file("spool/done")).count >= 20 }
        for code in await stopWorkers(workers) { #expect(code == 0) }
        if !finished {
            log += workers.map(\.stderr).joined(separator: "--- worker\n")
            let jobs = (try? PostgresLedger(url: url, password: nil).jobs().map { "\($0.id) \($0.status) \($0.input)" }) ?? []
            try? log.write(toFile: "/tmp/smsbatch-three-workers.log", atomically: true, encoding: .utf8)
            Issue.record("not finished: inbox/ \(names(dir.file("spool/inbox"))); processing/ \(names(dir.file("spool/processing"))); failed/ \(names(dir.file("spool/failed"))); jobs: \(jobs); workers' output in /tmp/smsbatch-three-workers.log")
        }
        #expect(kills >= 10)
        #expect(names(dir.file("spool/done")) == (0..<20).map { "f\($0).csv" }.sorted())
        #expect(names(dir.file("spool/processing")).isEmpty)
        #expect(names(dir.file("spool/failed")).isEmpty)
        let sums = toSend(dir)
        #expect(sums.count == 20)
        let got = try accepted(sandbox, token: token)
        #expect(got.count == sums.values.reduce(0, +))
        #expect(got.repeats == 0)
        let ledger = try PostgresLedger(url: url, password: nil)
        #expect(try ledger.jobs().map(\.status).allSatisfy { $0 == .completed })
    }

    @Test("three workers with requests_per_minute 120 share it: the sandbox never sees more than 120 sends in 60 s, nor more than 11 in any 5 s (one every 0.5 s)")
    func sharedRate() async throws {
        let postgres = try PostgresServer.start()
        let url = try postgres.createDatabase()
        let (sandbox, token) = try startSandbox()
        defer { sandbox.stop() }
        // 40 rows a request: three files of 320 rows are 8 requests each, 24 in all.
        let dir = workerDir(endpoint: sandbox.endpoint, url: url, perMinute: 120, nodesPerRequest: 40)
        let env = ["SMSBATCH_TOKEN": token]
        let workers = try (0..<3).map { _ in try Background(["watch"], cwd: dir.path, env: env) }
        for i in 0..<3 { try drop(dir, "r\(i).csv", rows: 320, seed: 900 + UInt64(i)) }
        let finished = await waitUntil(timeout: 120) { names(dir.file("spool/done")).count >= 3 }
        for code in await stopWorkers(workers) { #expect(code == 0) }
        #expect(finished, "\(workers.map(\.stderr).joined().suffix(3000))")
        let sends = sandbox.sendArrivals
        let sums = toSend(dir)
        #expect(try accepted(sandbox, token: token).count == sums.values.reduce(0, +))
        #expect(sends.count >= 20)
        func most(in window: Double) -> Int {
            var best = 0, start = 0
            for (end, t) in sends.enumerated() {
                while t - sends[start] >= window { start += 1 }
                best = max(best, end - start + 1)
            }
            return best
        }
        #expect(most(in: 60) <= 120)
        // Three workers on their own would start up to three requests every 0.5 s.
        #expect(most(in: 5) <= 11, "sends: \(sends.map { String(format: "%.3f", $0 - sends[0]) })")
    }

    @Test("PostgreSQL restarted mid-campaign: the workers wait for it and go on; every file done once, nothing sent twice")
    func postgresRestart() async throws {
        let postgres = try PostgresServer.startNew()
        let url = try postgres.createDatabase()
        // About 1,100 requests of 100 rows at 200 ms, 4 at a time per worker: the sending
        // lasts well beyond the restart, however slow this machine is meanwhile.
        let (sandbox, token) = try startSandbox { $0.latencyMs = 200 }
        defer { sandbox.stop() }
        let dir = workerDir(endpoint: sandbox.endpoint, url: url, lease: "10s", nodesPerRequest: 100)
        for i in 0..<6 { try drop(dir, "p\(i).csv", rows: 20_000, seed: 700 + UInt64(i)) }
        let env = ["SMSBATCH_TOKEN": token]
        let workers = try (0..<3).map { _ in try Background(["watch"], cwd: dir.path, env: env) }
        // On a thread of its own: the cooperative pool may be busy with other tests for a
        // long while, and the restart must come while the workers send.
        let restart = Locked<(during: Int, error: String?)?>(nil)
        Thread {
            while sandbox.accepted.count <= 5_000 { usleep(20_000) }
            postgres.stop()
            let during = sandbox.accepted.count
            sleep(3)
            let error = (try? postgres.start()) == nil ? "PostgreSQL did not start again: \(postgres.log.suffix(2000))" : nil
            restart.withLock { $0 = (during, error) }
        }.start()
        #expect(await waitUntil(timeout: 300) { restart.withLock { $0 != nil } }, "the sandbox never had 5,000 rows")
        let (during, error) = try #require(restart.withLock { $0 })
        #expect(error == nil, "\(error ?? "")")
        let finished = await waitUntil(timeout: 180) { names(dir.file("spool/done")).count >= 6 }
        for code in await stopWorkers(workers) { #expect(code == 0) }
        #expect(finished, "\(workers.map(\.stderr).joined().suffix(3000))")
        let sums = toSend(dir)
        let got = try accepted(sandbox, token: token)
        #expect(during < sums.values.reduce(0, +), "the restart came before the campaign ended")
        #expect(got.count == sums.values.reduce(0, +))
        #expect(got.repeats == 0)
        #expect(names(dir.file("spool/done")) == (0..<6).map { "p\($0).csv" })
        #expect(names(dir.file("spool/failed")).isEmpty)
    }
}

/// Two "hosts" on this machine: network namespaces joined by veth pairs to a bridge in the
/// test's own namespace, which alone carries the address the sandbox and PostgreSQL listen
/// on (a private 10.213.x.0/24 nothing outside the machine routes to). Needs root (CAP_NET_ADMIN)
/// and `ip`; where they cannot be made, `problem` says why.
private final class TwoHosts: @unchecked Sendable {  // changed only in init
    let hosts: [String]
    let serviceAddress: String
    let network: String
    private let bridge: String
    private let veths: [String]
    private(set) var problem: String?

    init() {
        let n = Int(getpid()) % 200 + 20
        bridge = "smsbbr\(n)"
        hosts = ["smsb-\(n)-a", "smsb-\(n)-b"]
        veths = hosts.indices.map { "smsbv\(n)\($0)" }
        serviceAddress = "10.213.\(n).1"
        network = "10.213.\(n).0/24"
        tearDown()  // what a killed run of the same pid may have left
        var steps = [["link", "add", bridge, "type", "bridge"], ["addr", "add", "\(serviceAddress)/24", "dev", bridge],
                     ["link", "set", bridge, "up"]]
        for (i, ns) in hosts.enumerated() {
            let veth = veths[i]
            steps += [["netns", "add", ns], ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
                      ["link", "set", veth, "master", bridge], ["link", "set", veth, "up"],
                      ["-n", ns, "addr", "add", "10.213.\(n).\(i + 2)/24", "dev", "eth0"],
                      ["-n", ns, "link", "set", "eth0", "up"], ["-n", ns, "link", "set", "lo", "up"]]
        }
        for step in steps {
            if let why = Self.ip(step) {
                problem = "ip \(step.joined(separator: " ")): \(why)"
                return
            }
        }
    }

    /// Unplugs `host`'s cable and SIGKILLs every process in it: the host is gone, and no
    /// FIN or RST from its sockets reaches anyone (as when a machine loses power).
    func kill(_ host: String) {
        _ = Self.ip(["-n", host, "link", "set", "eth0", "down"])
        let out = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "pids", host]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        let pids = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
        for pid in pids { Foundation.kill(pid, SIGKILL) }
    }

    /// Removes the namespaces, the veths (a namespace a process still ends in keeps its end
    /// a while) and the bridge.
    func tearDown() {
        for ns in hosts { kill(ns); _ = Self.ip(["netns", "del", ns]) }
        for veth in veths { _ = Self.ip(["link", "del", veth]) }
        _ = Self.ip(["link", "del", bridge])
    }

    /// Runs `ip`; nil when it succeeded, else what it said.
    private static func ip(_ args: [String]) -> String? {
        let err = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = args
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { return "cannot run /usr/sbin/ip: \(error)" }
        p.waitUntilExit()
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return p.terminationStatus == 0 ? nil : "exit \(p.terminationStatus): \(said)"
    }
}

@Suite("Two hosts on one PostgreSQL ledger", .tags(.process), .notInFastRuns)
struct TwoHostsTests {
    @Test("two hosts (network namespaces) each run watch on a shared inbox; every process of one is killed mid-campaign and its network cut: the other resumes its jobs once their lease runs out, every file done once, nothing sent twice")
    func hostDies() async throws {
        let net = TwoHosts()
        defer { net.tearDown() }
        if let problem = net.problem {
            // Containers without CAP_NET_ADMIN: the three-worker test still runs.
            print("TwoHostsTests: SKIPPED, no network namespaces can be made here (\(problem)); the three-worker test covers the rest")
            return
        }
        let postgres = try PostgresServer.startNew(host: net.serviceAddress, network: net.network)
        defer { postgres.stop() }
        let url = try postgres.createDatabase()
        let (sandbox, token) = try startSandbox { ($0.host, $0.latencyMs) = (net.serviceAddress, 20) }
        defer { sandbox.stop() }
        let dir = workerDir(endpoint: sandbox.endpoint, url: url, lease: "3s")
        for i in 0..<6 { try drop(dir, "h\(i).csv", rows: 20_000, seed: 800 + UInt64(i)) }
        let env = ["SMSBATCH_TOKEN": token]
        let a = try Background(["watch"], cwd: dir.path, env: env, netns: net.hosts[0])
        let b = try Background(["watch"], cwd: dir.path, env: env, netns: net.hosts[1])
        let ledger = try PostgresLedger(url: url, password: nil)
        // Host a dies mid-job: while it holds a lease and the sandbox has rows. Watched from a
        // thread of its own (the cooperative pool may be busy with other tests for long).
        let aPid = a.process.processIdentifier
        let cut = Locked<[String]?>(nil)
        Thread {
            let deadline = Date().addingTimeInterval(240)
            var held: [String] = []
            while held.isEmpty && Date() < deadline {
                held = ((try? ledger.jobs()) ?? []).filter { $0.worker?.hasSuffix(" pid \(aPid)") == true }.map(\.id)
                if sandbox.accepted.count <= 2_000 { held = [] }
                if held.isEmpty { usleep(20_000) }
            }
            net.kill(net.hosts[0])
            cut.withLock { $0 = held }
        }.start()
        #expect(await waitUntil(timeout: 300) { cut.withLock { $0 != nil } })
        let heldByA = cut.withLock { $0 } ?? []
        #expect(!heldByA.isEmpty, "host a never held a job: \(a.stderr.suffix(2000))")
        #expect(a.wait(timeout: 10) != nil, "host a's watch still runs")
        let finished = await waitUntil(timeout: 180) { names(dir.file("spool/done")).count >= 6 }
        #expect(await stopWorkers([b]) == [0])
        #expect(finished, "done/ \(names(dir.file("spool/done"))), processing/ \(names(dir.file("spool/processing"))): \(b.stderr.suffix(3000))")
        let sums = toSend(dir)
        let got = try accepted(sandbox, token: token)
        #expect(got.count == sums.values.reduce(0, +))
        #expect(got.repeats == 0)
        #expect(names(dir.file("spool/done")) == (0..<6).map { "h\($0).csv" })
        #expect(names(dir.file("spool/failed")).isEmpty)
        // Host b took over each job host a held, from the ledger.
        for job in heldByA { #expect(b.stderr.contains("resuming job \(job)"), "\(job) not resumed by host b") }
        #expect(try ledger.jobs().map(\.status).allSatisfy { $0 == .completed })
    }
}
