import Foundation

/// Hands record blocks from the parsing thread to the stages and back: a bounded queue of
/// events one way, a pool of empty blocks the other. Parsing (one core) overlaps
/// validation, dedupe and writing (the other) with at most three blocks alive.
final class BlockChannel: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var events: [CSVSource.Event] = []
    private var free: [BlockBox]
    private let capacity: Int
    private var stopped = false
    private var result: CSVSource.Result?

    init(blocks: Int = 3) {
        free = (0..<blocks).map { _ in BlockBox() }
        capacity = max(blocks - 1, 1)
    }

    // MARK: - Parsing side

    /// An empty block, waiting until the stages give one back.
    func takeFree() -> BlockBox {
        condition.lock()
        defer { condition.unlock() }
        while free.isEmpty && !stopped { condition.wait() }
        return free.popLast() ?? BlockBox()
    }

    /// Queues an event; false once the stages want no more.
    func push(_ event: CSVSource.Event) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while events.count >= capacity && !stopped { condition.wait() }
        if stopped { return false }
        events.append(event)
        condition.broadcast()
        return true
    }

    func finish(_ r: CSVSource.Result) {
        condition.lock()
        result = r
        condition.broadcast()
        condition.unlock()
    }

    // MARK: - Stages side

    /// The next event, or nil once parsing has finished and everything was taken.
    func next() -> CSVSource.Event? {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty && result == nil { condition.wait() }
        if events.isEmpty { return nil }
        let e = events.removeFirst()
        condition.broadcast()
        return e
    }

    func giveBack(_ box: BlockBox) {
        condition.lock()
        free.append(box)
        condition.broadcast()
        condition.unlock()
    }

    /// Asks the parsing thread to stop; it ends at its next hand-over.
    func stop() {
        condition.lock()
        stopped = true
        events.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// What the parsing thread reported when it ended (waits for it).
    func finished() -> CSVSource.Result {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}
