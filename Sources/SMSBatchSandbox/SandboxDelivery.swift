import Foundation
import SMSBatch

// Delivery reports in the sandbox (SPEC §11): every accepted message gets a final status
// `dlrDelay` seconds after it was accepted. The status is a pure function of the seed and the
// message's place in the store, so the same seed and the same sends give the same reports
// however the look-ups and pushes interleave.

/// Failure codes the sandbox draws from, as the platform names them (SPEC §11), most common
/// first: each is picked with the weight beside it.
let sandboxFailureCodes: [(code: String, weight: Int)] = [
    ("ABSENT-SUB", 30), ("INVALID-SUB", 20), ("DNDNUMB", 15), ("HANDSET-ERR", 10), ("BLACKLST", 8),
    ("EXPIRED", 7), ("MOB-OFF", 5), ("UNDELIV", 5),
]

/// One message's final delivery status in the sandbox.
struct SandboxDelivery: Equatable {
    /// `DELIVRD` or a failure code.
    let status: String
    /// UTC seconds of the report (`deliv_at`).
    let at: Int64

    /// The status of message `index` (its place among every message accepted): seeded, so
    /// it does not depend on when it is asked.
    static func draw(index: Int, seed: UInt64, failRate: Double, submittedAt: Int64, delay: Double) -> SandboxDelivery {
        var rng = SplitMix64(seed: seed ^ 0xD1B5_4A32_D192_ED03 &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let x = rng.next()
        let at = submittedAt + Int64(delay.rounded(.up))
        guard Double(x >> 11) * 0x1p-53 < failRate else { return SandboxDelivery(status: "DELIVRD", at: at) }
        let total = sandboxFailureCodes.reduce(0) { $0 + $1.weight }
        var pick = Int(rng.next() % UInt64(total))
        for (code, weight) in sandboxFailureCodes {
            if pick < weight { return SandboxDelivery(status: code, at: at) }
            pick -= weight
        }
        return SandboxDelivery(status: "UNDELIV", at: at)
    }
}

extension SandboxCore {
    /// Message `index`'s delivery status now: nil while it is still awaiting its report.
    func delivery(of index: Int, in s: SandboxState, now: Double) -> SandboxDelivery? {
        let m = s.messages[index]
        let group = s.groups[Int(m.group)]
        guard now >= group.acceptedAt + options.dlrDelay else { return nil }
        return SandboxDelivery.draw(index: index, seed: options.seed, failRate: options.dlrFailRate,
                                    submittedAt: group.submittedAt, delay: options.dlrDelay)
    }

    /// The provider's local time of `t` as the push payload writes it: `yyyy-mm-dd H:i:s`.
    static func localTime(_ t: Int64) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = providerZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(t)))
        return String(format: "%04d-%02d-%02d %d:%02d:%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// The push payload for message `index` (SPEC §11), as the provider sends it.
    func pushPayload(index: Int, delivery: SandboxDelivery, in s: SandboxState) -> [UInt8] {
        let m = s.messages[index]
        let group = s.groups[Int(m.group)]
        var out: [UInt8] = []
        out.appendASCII("{\"id\":")
        out.appendJSONString(group.id + ":" + String(m.position))
        out.appendASCII(",\"mobile\":")
        out.appendJSONString(m.mobile)
        out.appendASCII(",\"status\":")
        out.appendJSONString(delivery.status)
        out.appendASCII(",\"credits\":")
        out.appendJSONString(String(format: "%.4f", Double(m.units)))
        out.appendASCII(",\"units\":")
        out.appendDecimal(Int(m.units))
        let sent = group.submittedAt
        for (name, t) in [("deliv", delivery.at), ("sent", sent), ("submit", sent)] {
            out.append(contentsOf: Array(",\"\(name)_at\":".utf8))
            out.appendJSONString(String(t))
        }
        for (name, t) in [("deliv", delivery.at), ("sent", sent), ("submit", sent)] {
            out.append(contentsOf: Array(",\"\(name)_time\":".utf8))
            out.appendJSONString(SandboxCore.localTime(t))
        }
        out.appendASCII(",\"cid\":")
        out.appendJSONString(m.custom)
        out.appendASCII(",\"custom\":")
        out.appendJSONString(m.custom)
        out.append(0x7D)
        return out
    }

    /// `GET sandbox/delivered`: how many messages have each final status now, and how the
    /// pushes went.
    func deliveredSummary() -> HTTPAction {
        let now = options.clock.now()
        let counts: [String: Int] = state.withLock { s in
            var counts: [String: Int] = [:]
            for k in s.messages.indices { counts[delivery(of: k, in: s, now: now)?.status ?? "AWAITING-DLR", default: 0] += 1 }
            return counts
        }
        let (pushed, failures, queued, retries, _) = pusher?.counts ?? (0, 0, 0, 0, 0)
        var out: [UInt8] = []
        out.appendASCII("{\"counts\":{")
        for (k, status) in counts.keys.sorted().enumerated() {
            if k > 0 { out.append(0x2C) }
            out.appendJSONString(status)
            out.append(0x3A)
            out.appendDecimal(counts[status] ?? 0)
        }
        out.appendASCII("},\"pushed\":")
        out.appendDecimal(pushed)
        out.appendASCII(",\"push_failures\":")
        out.appendDecimal(failures)
        out.appendASCII(",\"push_queue\":")
        out.appendDecimal(queued)
        out.appendASCII(",\"push_retries\":")
        out.appendDecimal(retries)
        out.append(0x7D)
        return .respond(status: 200, headers: [], body: out)
    }
}

extension SandboxServer {
    /// Every accepted message's final status now, by its `custom` (the last message of a
    /// custom accepted twice): what the tests compare the ledger with.
    package var finalStatuses: [String: String] {
        core.finalStatuses()
    }
}

extension SandboxCore {
    func finalStatuses() -> [String: String] {
        let now = options.clock.now()
        return state.withLock { s in
            var out: [String: String] = [:]
            for k in s.messages.indices {
                if let d = delivery(of: k, in: s, now: now) { out[s.messages[k].custom] = d.status }
            }
            return out
        }
    }
}
