/// The dedupe stage over one block of records (SPEC §6): for each row, whether it repeats an
/// earlier valid row of the job (`in_file`) or a message an earlier job sent within
/// `dedupe.window` (`repeat_within_window`).
struct DedupeStep: ~Copyable {
    private var index = DedupeIndex()
    /// Messages earlier jobs sent within `dedupe.window`.
    var recentlySent: Set<MessageDigest> = []
    private let defaultSender: [UInt8]

    /// Per record of the last block: 0 = kept, `earlierJob` = sent by an earlier job within
    /// the window, else the row this one repeats.
    private(set) var firstRowOf: [Int] = []
    /// Per record of the last block: its message digest (zero for rejected rows).
    private(set) var digests: [MessageDigest] = []

    static let earlierJob = -1

    init(defaultSender: [UInt8]) { self.defaultSender = defaultSender }

    /// Keys every valid row by (sender, recipient, message bytes); the first occurrence is kept.
    mutating func run(_ records: ArraySlice<RecordInfo>, _ outcomes: [RowOutcome], _ block: borrowing RecordBlock) {
        firstRowOf.removeAll(keepingCapacity: true)
        digests.removeAll(keepingCapacity: true)
        for (k, r) in records.enumerated() {
            guard case .valid(let v) = outcomes[k] else { firstRowOf.append(0); digests.append(MessageDigest(high: 0, low: 0)); continue }
            let digest = withSender(v, block, defaultSender) { s in
                MessageDigest(sender: s, recipient: v.recipient.value, message: block.bytes.slice(v.messageStart, v.messageEnd))
            }
            digests.append(digest)
            let first = index.insert(digest, row: r.row) ?? 0
            firstRowOf.append(first == 0 && !recentlySent.isEmpty && recentlySent.contains(digest) ? DedupeStep.earlierJob : first)
        }
    }
}

/// The row's sender bytes: its own cell, or `validate.default_sender`.
@inline(__always)
func withSender<R, E: Error>(_ v: ValidRow, _ block: borrowing RecordBlock, _ fallback: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
    if v.senderStart >= 0 { return try body(block.bytes.slice(v.senderStart, v.senderEnd)) }
    return try fallback.withUnsafeBufferPointer { (b) throws(E) -> R in try body(b) }
}
