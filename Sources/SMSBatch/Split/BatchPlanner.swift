/// One batch of the plan (summary.json `plan`).
struct PlannedBatch: Equatable {
    let number: Int
    let part: Int
    var rows: Int
    /// UTC seconds; nil for a first batch that goes at once (`split.start: now`).
    let scheduledAt: Int64?
}

/// Messages counted against the caps: all (the kind's cap), WAP/RCS/VBR, VOC.
struct CapCounts: Equatable {
    var total = 0, channel = 0, voice = 0
}

/// Cuts the unique valid rows, in file order, into parts (SPEC §6 caps) and batches of
/// `batch_size`, and gives each batch its time.
struct BatchPlanner {
    private let kindCap: Int
    private let channelCap: Int
    private let voiceCap: Int
    private let batchSize: Int
    let interval: Int64
    /// `interval` had to be longer than configured (see init).
    let intervalStretched: Bool
    private let startsAtOnce: Bool
    /// Time of batch 1 when it is scheduled; batch k goes at t0 + (k-1) * interval.
    let t0: Int64

    private(set) var batches: [PlannedBatch] = []
    private(set) var parts = 0
    private var partTotal = 0, partChannel = 0, partVoice = 0
    /// Messages counted against each cap in the whole job, and in its largest part.
    private(set) var jobUse = CapCounts(), largestPart = CapCounts()
    /// Some part would have gone over a cap (`over_cap: reject` rejects the file).
    var overCap: Bool { parts > 1 }

    init(config: PipelineConfig, kind: CampaignKind, now: Int64) {
        let caps = config.caps
        kindCap = kind == .quick ? caps.quick : caps.bulk
        channelCap = caps.channel
        voiceCap = caps.voice
        batchSize = config.split.batchSize
        // A batch must be submitted before the next one is due (SPEC §6: every time still
        // more than 5 minutes ahead when submitted); at a low request rate that can take
        // longer than `interval`, which is then stretched to whole minutes that cover it.
        let submit = BatchPlanner.submitSeconds(config)
        interval = max(Int64(config.split.interval), (submit + 59) / 60 * 60)
        intervalStretched = interval > Int64(config.split.interval)
        switch config.split.start {
        case .now:
            startsAtOnce = true
            t0 = now + BatchPlanner.headroom(config)
        case .at(let t):
            startsAtOnce = false
            t0 = t
        }
    }

    /// Seconds to submit one full batch at `requests_per_minute` (0 when there is no limit).
    static func submitSeconds(_ c: PipelineConfig) -> Int64 {
        guard c.send.requestsPerMinute > 0 else { return 0 }
        let requests = (c.split.batchSize + c.send.nodesPerRequest - 1) / c.send.nodesPerRequest
        return Int64((requests * 60 + c.send.requestsPerMinute - 1) / c.send.requestsPerMinute)
    }

    /// Seconds between the job's start and t0 when the first batch goes at once: the time to
    /// submit the first batch, plus 6 minutes, rounded up to a whole minute. Batch k is then
    /// submitted by start + k·submit and due at t0 + (k-1)·interval with interval ≥ submit,
    /// so it is always more than 5 minutes ahead when it goes out.
    static func headroom(_ c: PipelineConfig) -> Int64 {
        (submitSeconds(c) + 360 + 59) / 60 * 60
    }

    func time(ofBatch number: Int) -> Int64? {
        if number == 1 && startsAtOnce { return nil }
        return t0 + Int64(number - 1) * interval
    }

    /// Places the next unique valid row; returns its batch number (1-based).
    mutating func place(_ channel: ProductChannel) -> Int {
        let addsChannel = channel == .channel ? 1 : 0
        let addsVoice = channel == .voice ? 1 : 0
        if parts == 0 || partTotal + 1 > kindCap || partChannel + addsChannel > channelCap
            || partVoice + addsVoice > voiceCap
        {
            parts += 1
            partTotal = 0; partChannel = 0; partVoice = 0
            openBatch()
        } else if batches[batches.count - 1].rows == batchSize {
            openBatch()
        }
        partTotal += 1
        partChannel += addsChannel
        partVoice += addsVoice
        jobUse.total += 1
        jobUse.channel += addsChannel
        jobUse.voice += addsVoice
        largestPart.total = max(largestPart.total, partTotal)
        largestPart.channel = max(largestPart.channel, partChannel)
        largestPart.voice = max(largestPart.voice, partVoice)
        batches[batches.count - 1].rows += 1
        return batches.count
    }

    private mutating func openBatch() {
        let n = batches.count + 1
        batches.append(PlannedBatch(number: n, part: parts, rows: 0, scheduledAt: time(ofBatch: n)))
    }

    /// Requests needed at `nodesPerRequest`, and minutes at `requestsPerMinute`.
    func estimatedSendSeconds(_ c: SendConfig) -> Int {
        let requests = batches.reduce(0) { $0 + ($1.rows + c.nodesPerRequest - 1) / c.nodesPerRequest }
        guard c.requestsPerMinute > 0 else { return 0 }
        return (requests * 60 + c.requestsPerMinute - 1) / c.requestsPerMinute
    }
}
