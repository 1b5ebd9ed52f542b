import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// `make bench-send`: rows per second from the send queue to the in-process sandbox with
/// every limit off, with and without the ledger. Runs only with SMSBATCH_BENCH=1 (a timing
/// is a measurement, not a test).
@Suite("Send benchmark", .enabled(if: ProcessInfo.processInfo.environment["SMSBATCH_BENCH"] != nil), .serialized)
struct SendBenchmark {
    static let rows = Int(ProcessInfo.processInfo.environment["SMSBATCH_BENCH_ROWS"] ?? "") ?? 200_000

    /// A queue of `rows` distinct messages in batches of 50,000.
    func queue(in dir: TempDir) throws -> JobOutputs {
        let outputs = try JobOutputs(config: PipelineConfig(), outDir: dir.file("out"))
        var q = try SendQueueWriter(path: outputs.path(JobOutputs.queueName))
        let sender = Array("MOBTXT".utf8)
        for row in 2..<(SendBenchmark.rows + 2) {
            let message = Array("Dear customer, your order \(row) has shipped and will arrive tomorrow. Track it in the app.".utf8)
            try sender.withUnsafeBufferPointer { s in
                try message.withUnsafeBufferPointer { m in
                    try q.append(row: row, batch: row / 50_000 + 1, product: Array("T".utf8), encoding: .gsm7, segments: 1,
                                 recipient: PhoneNumber(919_000_000_000 + UInt64(row)), scheduledAt: 0,
                                 digest: MessageDigest(high: UInt64(row), low: 7), sender: s, message: m,
                                 templateId: .init(start: nil, count: 0), entityId: .init(start: nil, count: 0))
                }
            }
        }
        try q.commit()
        return outputs
    }

    func measure(nodes: Int, ledger useLedger: Bool) async throws {
        let dir = TempDir()
        let outputs = try queue(in: dir)
        var options = SandboxOptions(token: "bench")
        options.rateLimit = 0
        let server = SandboxServer(options: options)
        try server.start()
        defer { server.stop() }
        var config = SendConfig()
        config.requestsPerMinute = 0
        config.nodesPerRequest = nodes
        config.concurrency = 4
        var ledger: Ledger? = nil
        if useLedger {
            ledger = try SQLiteLedger(path: dir.file("state.sqlite"))
            try ledger!.createJob(JobRecord(id: "bench", input: "bench", sha256: "0", status: .sending, clock: 0, startedAt: 0))
        }
        let client = ProviderClient(endpoint: server.endpoint, token: "bench", auth: .header, timeout: 30, concurrency: 4)
        let sender = Sender(config: config, jobID: "bench", client: client, ledger: ledger, clock: 0)
        let start = ContinuousClock.now
        let outcome = try await sender.run(queue: try SendQueueReader(path: outputs.path(JobOutputs.queueName)), outputs: outputs)
        let seconds = Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000
        #expect(outcome.submitted == SendBenchmark.rows)
        #expect(server.accepted.count == SendBenchmark.rows)
        print(String(format: "bench-send: %d rows, %4d nodes/request, concurrency 4, ledger %@: %.2f s, %.0f rows/s",
                     SendBenchmark.rows, nodes, useLedger ? "on " : "off", seconds, Double(SendBenchmark.rows) / seconds))
    }

    @Test("rows per second to the in-process sandbox", arguments: [(500, true), (500, false), (1000, true), (1000, false)])
    func throughput(nodes: Int, ledger: Bool) async throws {
        try await measure(nodes: nodes, ledger: ledger)
    }
}
