/// How long sending takes, by replaying what the sender does: batches one after another;
/// within a batch up to `concurrency` requests in flight, each starting at least 60/rpm
/// seconds after the one before (the rate limiter) and holding its slot for the provider's
/// answer time. Retries, 429 pauses and in-doubt lookups are not foreseen: it is an estimate,
/// and says so wherever it is shown.
struct SendEstimate {
    let perMinute: Int
    let concurrency: Int
    /// Seconds from a request's start to its answer (0 until measured).
    var latency: Double

    init(_ send: SendConfig, latency: Double = 0) {
        perMinute = send.requestsPerMinute
        concurrency = max(1, send.concurrency)
        self.latency = max(0, latency)
    }

    /// Seconds to send batches of `requestsPerBatch` requests each.
    func seconds(requestsPerBatch: [Int]) -> Double {
        let spacing = perMinute > 0 ? 60.0 / Double(perMinute) : 0
        var now = 0.0
        var lastStart = -Double.infinity
        var slots = [Double](repeating: 0, count: concurrency)
        for requests in requestsPerBatch where requests > 0 {
            for i in slots.indices { slots[i] = now }
            for _ in 0..<requests {
                // The slot that frees first takes the next request, once the limiter allows it.
                var k = 0
                for i in slots.indices where slots[i] < slots[k] { k = i }
                let start = max(slots[k], lastStart + spacing)
                lastStart = start
                slots[k] = start + latency
            }
            // The next batch starts when this one's last answer is in.
            now = slots.max() ?? now
        }
        return max(now, 0)
    }
}
