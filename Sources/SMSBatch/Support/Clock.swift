import Foundation
import Synchronization

/// Time as the sender's rate limits and backoff, and the sandbox's rate window, see it. Real
/// by default; tests give both a `VirtualClock`, so a 429 storm's waits cost no real time and
/// every spacing is exact.
package protocol MonotonicClock: Sendable {
    /// Seconds since an arbitrary start; never goes back.
    func now() -> Double
    /// Returns once `seconds` have passed on this clock.
    func sleep(seconds: Double) async
}

/// The machine's monotonic clock.
package struct RealClock: MonotonicClock {
    package init() {}
    package func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    package func sleep(seconds: Double) async {
        guard seconds > 0 else { return }
        try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
    }
}

/// A clock that stands still until someone sleeps on it, and then jumps to the end of that
/// sleep at once. Waits take no real time, and what is measured on it is exact.
package final class VirtualClock: MonotonicClock {
    private let seconds = Locked(0.0)

    package init(start: Double = 1_000) { seconds.withLock { $0 = start } }

    package func now() -> Double { seconds.withLock { $0 } }

    package func sleep(seconds wait: Double) async {
        advance(wait)
        await Task.yield()
    }

    /// Moves the clock on by `wait` seconds without anyone sleeping.
    package func advance(_ wait: Double) { seconds.withLock { $0 += max(0, wait) } }
}

/// SplitMix64: a small, fast, seedable PRNG; the same seed gives the same sequence (the
/// sandbox's faults, the sender's backoff jitter).
package struct SplitMix64: Sendable, RandomNumberGenerator {
    private var state: UInt64
    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
