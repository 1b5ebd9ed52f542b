import Foundation

/// Keeps every request of a job within `requests_per_minute` (SPEC §8), across all
/// concurrent requests: starts are spaced at least 60/rpm seconds apart, and no 60-second
/// window ever holds more than rpm starts. A 429 pauses every sender until its Retry-After.
///
/// With a `SharedRate` (the ledger on PostgreSQL) the same rules hold over every worker on
/// the account: each start is taken from the budget the workers share, on the server's
/// clock, and a 429 pauses them all.
actor RateLimiter {
    /// A budget several workers take their starts from.
    struct SharedRate: Sendable {
        let budget: any SharedRateBudget
        /// Who the provider counts against: a digest of the endpoint and token.
        let account: String
        /// `send` or `status` (the platform counts GETs apart from sends).
        let kind: String
    }
    private let shared: SharedRate?
    private let perMinute: Int
    private let spacing: Double
    private var starts: [Double] = []
    private var head = 0
    private var last = -Double.infinity
    private var pausedUntil = 0.0
    /// Requests let through so far.
    private(set) var granted = 0
    /// Start times (this clock) of the first 10,000 requests let through, for tests that
    /// check the spacing the limiter promises on its own clock.
    private(set) var startLog: [Double] = []

    private let clock: any MonotonicClock
    /// Told how many seconds each 429 added to the pause (overlapping 429s count once).
    private let onPause: @Sendable (Double) -> Void

    /// `perMinute` 0 turns the limiter off (benchmarks against the in-process sandbox).
    init(perMinute: Int, clock: any MonotonicClock = RealClock(), shared: SharedRate? = nil,
         onPause: @escaping @Sendable (Double) -> Void = { _ in }) {
        self.clock = clock
        self.shared = shared
        self.onPause = onPause
        self.perMinute = perMinute
        spacing = perMinute > 0 ? 60.0 / Double(perMinute) : 0
    }

    /// Waits until one more request may start, and counts it.
    func acquire() async {
        granted += 1
        guard perMinute > 0 else { return }
        while true {
            let now = clock.now()
            var earliest = max(pausedUntil, last + spacing)
            if starts.count - head >= perMinute { earliest = max(earliest, starts[head] + 60.001) }
            if now >= earliest, let shared {
                // The shared budget decides. A ledger that cannot answer (its server is away
                // longer than a reconnect waits) leaves this worker's own limit in charge: a
                // send's intent cannot be recorded then anyway, and a wait here would never end.
                let wait = (try? shared.budget.takeStart(account: shared.account, kind: shared.kind, perMinute: perMinute)) ?? 0
                if wait > 0 {
                    await clock.sleep(seconds: wait + 1e-6)
                    continue
                }
            }
            if now >= earliest {
                starts.append(now)
                if startLog.count < 10_000 { startLog.append(now) }
                if starts.count - head > perMinute { head += 1 }
                if head > 4096 { starts.removeFirst(head); head = 0 }
                last = now
                return
            }
            await clock.sleep(seconds: earliest - now + 1e-6)
        }
    }

    /// After a 429: nobody starts a request for `seconds`.
    func pause(for seconds: Double) {
        let now = clock.now()
        let until = now + seconds
        let added = until - max(pausedUntil, now)
        if let shared { try? shared.budget.pauseStarts(account: shared.account, kind: shared.kind, seconds: seconds) }
        if added > 0 {
            pausedUntil = until
            onPause(added)
        }
    }
}

/// The wait before retry `attempt` (from 1) of a request that failed without a Retry-After:
/// exponential backoff with jitter, 0.25 s · 2^(attempt-1) capped at 30 s, drawn from its
/// upper half. Sends and lookups (in-doubt and delivery reports) share it.
enum Backoff {
    static func seconds(attempt: Int, using rng: inout SplitMix64) -> Double {
        let cap = min(30.0, 0.25 * pow(2.0, Double(attempt - 1)))
        return Double.random(in: cap / 2...cap, using: &rng)
    }
}
