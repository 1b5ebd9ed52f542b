import SMSBatch
// The sandbox's memory: every accepted message, the rate-limit window and the fault PRNG.
// All of it lives in one struct behind one lock (`SandboxCore.state`); the hot path only
// appends, and the look-up indexes are brought up to date when a look-up needs them.

/// The products the provider knows (SPEC §5); the first four are SMS and count segments.
let sandboxServices = ["T", "P", "S", "G", "VOC", "WAP", "RCS", "VBR"]

/// One accepted message.
struct StoredMessage: Sendable {
    /// `+` and digits.
    var mobile: String
    /// The client's `custom`, or empty.
    var custom: String
    var sender: String
    /// The group (request) it came in, an index into `SandboxState.groups`.
    var group: Int32 = 0
    /// 1-based position in its request: the `n` of the id `<group id>:<n>`.
    var position: Int32
    var units: Int32
    /// Index into `sandboxServices`.
    var service: UInt8
    /// Scheduled time (UTC seconds), or nil for "at once".
    var scheduledAt: Int64?
}

/// One accepted request.
struct StoredGroup: Sendable {
    var id: String
    /// Index of its first message in `SandboxState.messages`.
    var first: Int
    var count: Int
    /// UTC seconds.
    var submittedAt: Int64
    /// When it was accepted on the sandbox's clock: its delivery reports are final
    /// `dlrDelay` seconds later.
    var acceptedAt: Double
}

/// Everything the sandbox remembers.
struct SandboxState: Sendable {
    var rng: SplitMix64
    var window = RateWindow()
    /// Arrival time (monotonic ns) of every authenticated request, for tests of client rates.
    var arrivals: [UInt64] = []
    var sendArrivals: [UInt64] = []
    var groups: [StoredGroup] = []
    var groupByID: [String: Int32] = [:]
    var messages: [StoredMessage] = []
    var balance = 1_000_000

    // Look-up indexes, built lazily over messages[..<indexed].
    private(set) var indexed = 0
    private var lastByMobile: [String: Int32] = [:]
    private var lastByCustom: [String: Int32] = [:]
    /// For each message, the previous message with the same mobile / non-empty custom, or -1.
    private var prevSameMobile: [Int32] = []
    private var prevSameCustom: [Int32] = []
    /// Messages whose non-empty custom had been accepted before.
    private(set) var repeats = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Indexes the messages accepted since the last look-up.
    mutating func catchUp() {
        guard indexed < messages.count else { return }
        for k in indexed..<messages.count {
            let m = messages[k]
            let idx = Int32(k)
            prevSameMobile.append(lastByMobile.updateValue(idx, forKey: m.mobile) ?? -1)
            if m.custom.isEmpty {
                prevSameCustom.append(-1)
            } else {
                let prev = lastByCustom.updateValue(idx, forKey: m.custom)
                if prev != nil { repeats += 1 }
                prevSameCustom.append(prev ?? -1)
            }
        }
        indexed = messages.count
    }

    /// Indexes of the messages to `mobile`, oldest first (call `catchUp` first).
    func messages(mobile: String) -> [Int] { chain(lastByMobile[mobile], prevSameMobile) }

    /// Indexes of the messages with custom id `custom`, oldest first (call `catchUp` first).
    func messages(custom: String) -> [Int] { custom.isEmpty ? [] : chain(lastByCustom[custom], prevSameCustom) }

    /// The distinct non-empty customs accepted (call `catchUp` first).
    var customs: Dictionary<String, Int32>.Keys { lastByCustom.keys }

    private func chain(_ last: Int32?, _ prev: [Int32]) -> [Int] {
        var out: [Int] = []
        var k = last ?? -1
        while k >= 0 {
            out.append(Int(k))
            k = prev[Int(k)]
        }
        return out.reversed()
    }
}

/// The requests of the last 60 seconds, for the per-token rate limit.
struct RateWindow: Sendable {
    private var stamps: [UInt64] = []
    private var head = 0
    private var count = 0

    /// Counts a request at `now` (monotonic nanoseconds) if fewer than `limit` were made in
    /// the last minute; otherwise counts nothing and returns the whole seconds (≥ 1) until
    /// the oldest of them leaves the window.
    mutating func admit(now: UInt64, limit: Int, length: UInt64 = 60_000_000_000) -> Int? {
        if stamps.count != limit {
            stamps = [UInt64](repeating: 0, count: limit)
            head = 0
            count = 0
        }
        while count > 0 && now &- stamps[head] >= length {
            head = (head + 1) % limit
            count -= 1
        }
        if count >= limit {
            let wait = stamps[head] &+ length &- now
            return max(1, Int((wait + 999_999_999) / 1_000_000_000))
        }
        stamps[(head + count) % limit] = now
        count += 1
        return nil
    }
}

