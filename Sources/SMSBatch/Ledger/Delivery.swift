import Foundation

/// A delivery report (SPEC §11) as it came from the provider, pulled or pushed, before it is
/// matched to a row.
public struct DeliveryReport: Sendable, Equatable {
    /// The provider's message id; empty when the report gave none.
    public var messageId: String
    /// The `custom` the message was sent with (`<job id>:<row>`); empty when none.
    public var custom: String
    /// The provider's status, upper-cased (`DELIVRD`, `ABSENT-SUB`, `AWAITING-DLR` …).
    public var status: String
    /// When the provider says it was delivered (or failed), UTC seconds.
    public var at: Int64?

    public init(messageId: String, custom: String, status: String, at: Int64?) {
        self.messageId = messageId.trimmingCharacters(in: .whitespaces)
        self.custom = custom.trimmingCharacters(in: .whitespaces)
        self.status = status.trimmingCharacters(in: .whitespaces).uppercased()
        // A time outside 1970…2100 is no delivery time (a provider's 0 or garbage): none.
        self.at = at.flatMap { (1...4_102_444_800).contains($0) ? $0 : nil }
    }

    /// Unix seconds from a provider's text: an integer, or a finite decimal; nil otherwise.
    public static func seconds(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let i = Int64(t) { return i }
        guard let d = Double(t), d.isFinite, abs(d) < 1e12 else { return nil }
        return Int64(d)
    }

    /// A status that will not change any more.
    public var isFinal: Bool { DeliveryStatus.isFinal(status) }

    /// The job and row its `custom` names, when it has the form `<job id>:<row>`.
    var customRow: (job: String, row: Int)? {
        guard let colon = custom.lastIndex(of: ":"), let row = Int(custom[custom.index(after: colon)...]), row > 0 else { return nil }
        let job = String(custom[..<colon])
        return job.isEmpty ? nil : (job, row)
    }
}

/// What a row's delivery status means for the operator.
public enum DeliveryOutcome: String, Sendable, CaseIterable {
    case delivered
    /// A failure code of the platform's list.
    case failed
    /// A status the platform's list does not have: kept as it came, counted as failed.
    case failedOther = "failed-other"
    /// No final status yet.
    case pending
    /// No final status came within `dlr.stop_after`: never counted as delivered.
    case expired = "expired-unknown"

    public var isFailure: Bool { self == .failed || self == .failedOther }
}

/// The platform's delivery statuses (SPEC §11).
public enum DeliveryStatus {
    public static let awaiting = "AWAITING-DLR"
    public static let delivered = "DELIVRD"
    /// Ours, not the platform's: no final status within `dlr.stop_after`.
    public static let expiredUnknown = "EXPIRED-UNKNOWN"

    /// The final failure codes the platform documents.
    public static let failures: Set<String> = [
        "INVALID-SUB", "ABSENT-SUB", "HANDSET-ERR", "BARRED", "NET-ERR", "MEMEXEC", "FAILED", "MOB-OFF", "HANDSET-BUSY",
        "SERIES-BLK", "EXPIRED", "UNDELIV", "REJ-MULTIPART", "NO-CREDITS", "NO-ACCOUNT", "SERVER-ERR", "INV-NUMBER", "SPAM",
        "DNDNUMB", "BLACKLST", "SNDR-BLOCK", "TEMPLATE-NOT-FOUND", "INV-TEMPLATE", "INV-SENDER", "NOT-OPTIN", "OPTOUT-REJ",
        "PROMO-TMOUT", "REJECTED", "NOTALLOWED", "DUPLICATE", "THROTTLED", "DLT-REJECTED", "DLT-INV-TMID", "DLT-INV-ENTITY",
        "TIMEOUT-DLR",
    ]

    /// Statuses that are not final: the message is still on its way.
    static let notFinal: Set<String> = ["", awaiting, "PENDING", "SUBMITTED", "SENT", "ACCEPTED", "ENROUTE", "BUFFERED"]

    public static func isFinal(_ status: String) -> Bool { !notFinal.contains(status) }

    /// What `status` means; nil or not final is pending.
    public static func outcome(of status: String?) -> DeliveryOutcome {
        guard let status, isFinal(status) else { return .pending }
        if status == delivered { return .delivered }
        if status == expiredUnknown { return .expired }
        return failures.contains(status) ? .failed : .failedOther
    }
}

/// What recording delivery reports did.
public struct DeliveryRecording: Sendable, Equatable {
    /// Rows that got their final status now.
    public var recorded = 0
    /// Reports for rows that already had this final status (a duplicate push, a re-pull).
    public var repeated = 0
    /// Reports for rows that already had another final status: kept as first recorded.
    public var conflicts: [String] = []
    /// Reports for no known message: kept in the ledger's `unmatched` table for later.
    public var unmatched = 0
    /// Reports whose status is not final yet (`AWAITING-DLR`): nothing to record.
    public var notFinal = 0
    /// Jobs with rows recorded now.
    public var jobs: Set<String> = []
    public init() {}

    public mutating func add(_ other: DeliveryRecording) {
        recorded += other.recorded
        repeated += other.repeated
        conflicts += other.conflicts
        unmatched += other.unmatched
        notFinal += other.notFinal
        jobs.formUnion(other.jobs)
    }
}

/// A submitted row still without a final delivery status.
public struct AwaitingRow: Sendable, Equatable {
    public var row: Int
    public var messageId: String?
    /// The request's group at the provider (`group_id`), when its answer gave one.
    public var groupId: String?
}

/// A row's final delivery status as recorded.
public struct RowDelivery: Sendable, Equatable {
    public var status: String
    public var at: Int64?
    public var outcome: DeliveryOutcome { DeliveryStatus.outcome(of: status) }
}

/// Counts of a job's submitted rows by delivery status (`AWAITING-DLR` for those without a
/// final one), in total and per batch.
public struct DeliveryCounts: Sendable, Equatable {
    public var total: [String: Int] = [:]
    public var batches: [Int: [String: Int]] = [:]
    public init() {}

    public mutating func add(batch: Int, status: String, count: Int) {
        total[status, default: 0] += count
        batches[batch, default: [:]][status, default: 0] += count
    }

    /// Rows by outcome.
    public func outcomes(_ counts: [String: Int]? = nil) -> [DeliveryOutcome: Int] {
        var out: [DeliveryOutcome: Int] = [:]
        for (status, n) in counts ?? total { out[DeliveryStatus.outcome(of: status), default: 0] += n }
        return out
    }
}
