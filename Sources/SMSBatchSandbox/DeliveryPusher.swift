import Foundation
import SMSBatch
import Synchronization

/// Pushes the sandbox's delivery reports to a webhook as the provider does (SPEC §11): each
/// message's report once it is final, with a bearer secret; a push answered by anything but
/// 200/202 (or not at all) is retried `retries` times `retryAfter` seconds apart, then
/// dropped; a seeded share of reports is pushed a second time.
final class DeliveryPusher: Sendable {
    struct Item: Sendable {
        var index: Int
        var due: Double
        var attempt = 0
        var duplicate = false
    }

    private struct Queue: Sendable {
        /// First pushes, due in acceptance order.
        var fresh: [Item] = []
        var freshHead = 0
        /// Retries and duplicates, due in the order they were queued (one fixed interval).
        var again: [Item] = []
        var againHead = 0
        var pushed = 0
        var failures = 0
        var inFlight = 0
        /// Pushes that failed and were queued again.
        var retries = 0
        var stopped = false
        /// First pushes that may still be started; nil: no limit.
        var allowance: Int?

        mutating func take(now: Double, limit: Int) -> [Item] {
            var out: [Item] = []
            while out.count < limit {
                if againHead < again.count, again[againHead].due <= now { out.append(again[againHead]); againHead += 1 }
                else if freshHead < fresh.count, fresh[freshHead].due <= now, allowance ?? 1 > 0 {
                    out.append(fresh[freshHead]); freshHead += 1
                    if let a = allowance { allowance = a - 1 }
                }
                else { break }
            }
            if freshHead > 4096 && freshHead * 2 > fresh.count { fresh.removeFirst(freshHead); freshHead = 0 }
            if againHead > 4096 && againHead * 2 > again.count { again.removeFirst(againHead); againHead = 0 }
            return out
        }
    }

    static let retries = 3
    /// Pushes in flight at once.
    let concurrency: Int

    private let client: ProviderClient
    private let retryAfter: Double
    private let dupRate: Double
    private let seed: UInt64
    private let clock: any MonotonicClock
    private let queue = Locked(Queue())

    init(url: String, secret: String, retryAfter: Double, dupRate: Double, seed: UInt64, clock: any MonotonicClock, concurrency: Int = 64) {
        self.concurrency = max(1, concurrency)
        client = ProviderClient(endpoint: url, token: secret, auth: .header, timeout: 10, concurrency: self.concurrency)
        self.retryAfter = retryAfter
        self.dupRate = dupRate
        self.seed = seed
        self.clock = clock
    }

    /// Successful pushes (duplicates included), reports dropped after every retry failed,
    /// and pushes still queued (not yet due, or waiting for a retry).
    var counts: (pushed: Int, failures: Int, queued: Int, retries: Int, inFlight: Int) {
        queue.withLock { ($0.pushed, $0.failures, ($0.fresh.count - $0.freshHead) + ($0.again.count - $0.againHead) + $0.inFlight, $0.retries, $0.inFlight) }
    }

    /// Queues the reports of messages `indices`, final at `due` (on the sandbox's clock).
    func enqueue(_ indices: Range<Int>, due: Double) {
        queue.withLock { q in for k in indices { q.fresh.append(Item(index: k, due: due)) } }
    }

    func stop() { queue.withLock { $0.stopped = true } }

    /// Lets at most `n` more first pushes start (retries and duplicates are never held); nil
    /// lifts the limit. Tests use it to hold a storm open while they kill its receiver: the
    /// pushes still queued cannot all be made before the test has done what it needs.
    func allow(_ n: Int?) { queue.withLock { $0.allowance = n } }

    /// Lets `n` more first pushes start, on top of what is still allowed.
    func allowMore(_ n: Int) { queue.withLock { $0.allowance = ($0.allowance ?? 0) + n } }

    /// Pushes until stopped, keeping up to `concurrency` pushes in flight; `payload` builds a
    /// message's report.
    func run(payload: @escaping @Sendable (Int) -> [UInt8]?) {
        Task.detached { [self] in
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                while true {
                    let (items, stopped) = queue.withLock { q in
                        let items = q.take(now: clock.now(), limit: concurrency - running)
                        q.inFlight += items.count
                        return (items, q.stopped)
                    }
                    if stopped { break }
                    for item in items { group.addTask { await self.push(item, payload: payload) } }
                    running += items.count
                    if running == concurrency || (items.isEmpty && running > 0) {
                        await group.next()
                        running -= 1
                    } else if items.isEmpty {
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                group.cancelAll()
            }
        }
    }

    private func push(_ item: Item, payload: (Int) -> [UInt8]?) async {
        guard let body = payload(item.index) else { return }
        let result = await client.postJSON(body: Data(body))
        let received: Bool
        if case .success(let reply) = result, reply.status == 200 || reply.status == 202 { received = true } else { received = false }
        let now = clock.now()
        queue.withLock { q in
            q.inFlight -= 1
            if received {
                q.pushed += 1
                if !item.duplicate && dupRate > 0 && draw(item.index) < dupRate {
                    q.again.append(Item(index: item.index, due: now, duplicate: true))
                }
            } else if item.attempt < Self.retries {
                var next = item
                next.attempt += 1
                next.due = now + retryAfter
                q.again.append(next)
                q.retries += 1
            } else {
                q.failures += 1
            }
        }
    }

    /// The seeded draw that decides whether message `index`'s report is pushed twice.
    private func draw(_ index: Int) -> Double {
        var rng = SplitMix64(seed: seed ^ 0x5DEE_CE66_D1CE_5EED &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9)
        return Double(rng.next() >> 11) * 0x1p-53
    }
}
