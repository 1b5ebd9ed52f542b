/// The split stage over one block (SPEC §6): each kept valid row's part and batch, in file
/// order, and the time it goes — its own `schedule_at`, else its batch's, a promotional time
/// outside the promo window moved to the next opening. It also counts, batch by batch, the
/// requests the sender will make: rows of one product and one time go together, at most
/// `nodes_per_request` a request.
struct SplitStep {
    private(set) var planner: BatchPlanner
    private let products: [ProductEntry]
    private let window: PromoWindow
    private let nodesPerRequest: Int
    private let now: Int64

    /// Per record of the last block: its batch (0 for a row that is not sent) and its time
    /// (UTC seconds; nil at once).
    private(set) var batchOf: [Int] = []
    private(set) var timeOf: [Int64?] = []

    /// The current batch, its time and rows by product and time.
    private var batchNumber = 0
    private(set) var batchTime: Int64?
    private var groups: [GroupKey: Int] = [:]
    private var promoCache: (base: Int64, moved: Int64)?
    /// Per batch (index = number - 1): requests, groups, promotional rows deferred.
    private var requests: [Int] = []
    private var groupCounts: [Int] = []
    private var deferredRows: [Int] = []
    /// Promotional rows moved to a promo-window opening, by their new time.
    private var deferredTo: [Int64: Int] = [:]

    private struct GroupKey: Hashable {
        let product: UInt8
        let time: Int64
    }

    init(config: PipelineConfig, kind: CampaignKind, products: [ProductEntry], now: Int64) {
        planner = BatchPlanner(config: config, kind: kind, now: now)
        self.products = products
        window = config.validate.promoWindow
        nodesPerRequest = max(1, config.send.nodesPerRequest)
        self.now = now
    }

    /// Places every kept valid row (`firstRowOf` 0) of the block.
    mutating func run(_ outcomes: [RowOutcome], firstRowOf: [Int]) {
        batchOf.removeAll(keepingCapacity: true)
        timeOf.removeAll(keepingCapacity: true)
        for k in 0..<outcomes.count {
            guard case .valid(let v) = outcomes[k], firstRowOf[k] == 0 else { batchOf.append(0); timeOf.append(nil); continue }
            let product = products[Int(v.product)]
            let batch = planner.place(product.rule.channel)
            if batch != batchNumber { startBatch(batch) }
            var time: Int64? = v.scheduleAt == 0 ? batchTime : v.scheduleAt
            if product.isPromotional {
                let base = time ?? now
                // Most P rows share their batch's time: one zone computation per batch, not per row.
                if promoCache?.base != base { promoCache = (base, deferredForPromo(base)) }
                let moved = promoCache!.moved
                if moved != base {
                    time = moved
                    deferredTo[moved, default: 0] += 1
                    deferredRows[batch - 1] += 1
                }
            }
            groups[GroupKey(product: v.product, time: time ?? 0), default: 0] += 1
            batchOf.append(batch)
            timeOf.append(time)
        }
    }

    private mutating func startBatch(_ number: Int) {
        closeBatch()
        batchNumber = number
        batchTime = planner.time(ofBatch: number)
        while requests.count < number { requests.append(0); groupCounts.append(0); deferredRows.append(0) }
    }

    /// Turns the current batch's groups into its number of requests.
    mutating func closeBatch() {
        guard batchNumber > 0 else { return }
        requests[batchNumber - 1] = groups.values.reduce(0) { $0 + ($1 + nodesPerRequest - 1) / nodesPerRequest }
        groupCounts[batchNumber - 1] = groups.count
        groups.removeAll(keepingCapacity: true)
    }

    /// SPEC §6: a P message outside the promo window moves to the next opening when
    /// `action: defer` (with `reject`, rows with their own time were rejected already).
    private func deferredForPromo(_ t: Int64) -> Int64 {
        window.action == .defer ? window.nextOpening(after: t) : t
    }

    /// The plan, batch by batch (call `closeBatch` first).
    var plan: [JobSummary.PlanEntry] {
        planner.batches.map { b in
            .init(batch: b.number, part: b.part, rows: b.rows, scheduledAt: b.scheduledAt,
                  requests: requests[b.number - 1], groups: groupCounts[b.number - 1], deferred: deferredRows[b.number - 1])
        }
    }

    /// Promotional rows moved, by the opening they go at.
    var deferred: [JobSummary.DeferredEntry] {
        deferredTo.sorted { $0.key < $1.key }.map { .init(scheduledAt: $0.key, rows: $0.value) }
    }
}
