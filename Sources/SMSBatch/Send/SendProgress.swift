import Synchronization

/// Counters the sender keeps while it works, for the progress line and the re-estimate of
/// the time left. Display only: the counts a job reports come from the ledger.
final class SendProgress: Sendable {
    struct Snapshot: Sendable, Equatable {
        var submitted = 0
        var failed = 0
        var inDoubt = 0
        /// Requests answered (or failed without an answer), every attempt.
        var requests = 0
        var retries = 0
        var batches = 0
        /// Sum of the seconds requests took to come back.
        var latencyTotal = 0.0

        /// Mean seconds from a send's start to its answer, nil before the first.
        var meanLatency: Double? { requests > 0 ? latencyTotal / Double(requests) : nil }
    }

    private let state = Locked(Snapshot())

    init() {}

    var snapshot: Snapshot { state.withLock { $0 } }

    func answered(seconds: Double) {
        state.withLock { $0.requests += 1; $0.latencyTotal += seconds }
    }

    func settled(submitted: Int, failed: Int, inDoubt: Int) {
        guard submitted + failed + inDoubt > 0 else { return }
        state.withLock { $0.submitted += submitted; $0.failed += failed; $0.inDoubt += inDoubt }
    }

    func retried() { state.withLock { $0.retries += 1 } }
    func batchDone() { state.withLock { $0.batches += 1 } }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
