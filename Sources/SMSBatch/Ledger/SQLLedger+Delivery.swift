import Foundation

// Delivery reports in the SQLite ledger (SPEC §11): `messages.dlr_status` holds a row's first
// final status; `unmatched` the reports for messages not (yet) known.
extension SQLLedger {
    public func recordDeliveries(_ reports: [DeliveryReport], receivedAt: Int64) throws(LedgerError) -> DeliveryRecording {
        guard !reports.isEmpty else { return DeliveryRecording() }
        return try wrap {
            try db.transaction { () throws(SQLError) -> DeliveryRecording in
                var out = DeliveryRecording()
                for report in reports {
                    guard report.isFinal else { out.notFinal += 1; continue }
                    if try !Self.apply(db, report, receivedAt: receivedAt, into: &out) {
                        out.unmatched += 1
                        let named = report.customRow
                        try db.execute(
                            #"INSERT INTO unmatched(message_id, custom, job_id, "row", status, dlr_at, received_at) VALUES(?, ?, ?, ?, ?, ?, ?)"#,
                            [.text(report.messageId), .text(report.custom), named.map { .text($0.job) } ?? .null,
                             named.map { .integer(Int64($0.row)) } ?? .null, .text(report.status),
                             report.at.map { .integer($0) } ?? .null, .integer(receivedAt)])
                    }
                }
                return out
            }
        }
    }

    public func matchUnmatched() throws(LedgerError) -> DeliveryRecording {
        // Only the reports whose message is known now, found through the indexes (a read:
        // other processes keep writing meanwhile); those are applied in one transaction.
        let candidates = try wrap {
            try db.query(#"""
                SELECT u.id, u.message_id, u.custom, u.status, u.dlr_at, u.received_at FROM unmatched u
                WHERE (u.message_id <> '' AND EXISTS (SELECT 1 FROM messages m WHERE m.message_id = u.message_id AND m.state = 'submitted'))
                   OR (u.job_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.job_id = u.job_id AND m."row" = u."row" AND m.state = 'submitted'))
                ORDER BY u.id
                """#)
        }
        guard !candidates.isEmpty else { return DeliveryRecording() }
        return try wrap {
            try db.transaction { () throws(SQLError) -> DeliveryRecording in
                var out = DeliveryRecording()
                for r in candidates {
                    let report = DeliveryReport(messageId: r.string(1) ?? "", custom: r.string(2) ?? "", status: r.string(3) ?? "", at: r.int64(4))
                    if try Self.apply(db, report, receivedAt: r.int64(5) ?? 0, into: &out) {
                        try db.execute("DELETE FROM unmatched WHERE id = ?", [.integer(r.int64(0) ?? 0)])
                    }
                }
                return out
            }
        }
    }

    public func unmatchedCount() throws(LedgerError) -> Int {
        try wrap { Int(try db.query("SELECT COUNT(*) FROM unmatched").first?.int64(0) ?? 0) }
    }

    /// Records `report` on its row: false when it matches no submitted message.
    private static func apply(_ db: any SQLDatabase, _ report: DeliveryReport, receivedAt: Int64,
                              into out: inout DeliveryRecording) throws(SQLError) -> Bool {
        var found: SQLRow?
        if !report.messageId.isEmpty {
            found = try db.query(#"SELECT job_id, "row", dlr_status, batch FROM messages WHERE message_id = ? AND state = 'submitted'"#,
                                 [.text(report.messageId)]).first
        }
        if found == nil, let (job, row) = report.customRow {
            found = try db.query(#"SELECT job_id, "row", dlr_status, batch FROM messages WHERE job_id = ? AND "row" = ? AND state = 'submitted'"#,
                                 [.text(job), .integer(Int64(row))]).first
        }
        guard let found, let job = found.string(0), let row = found.int64(1) else { return false }
        if let earlier = found.string(2) {
            if earlier == report.status { out.repeated += 1 } else {
                out.conflicts.append("\(job):\(row) is \(earlier); a later report says \(report.status) (kept \(earlier))")
            }
            return true
        }
        // Only a row still without a status: on PostgreSQL another worker may have recorded
        // one since the SELECT above (this UPDATE then waits for it and changes nothing).
        let changed = try db.execute(#"UPDATE messages SET dlr_status = ?, dlr_at = ?, dlr_received_at = ? WHERE job_id = ? AND "row" = ? AND dlr_status IS NULL"#,
                                     [.text(report.status), report.at.map { .integer($0) } ?? .null, .integer(receivedAt), .text(job), .integer(row)])
        if changed == 0 {
            out.repeated += 1
            return true
        }
        try db.execute("INSERT INTO delivery_counts(job_id, batch, status, n) VALUES(?, ?, ?, 1) ON CONFLICT(job_id, batch, status) DO UPDATE SET n = delivery_counts.n + 1",
                       [.text(job), .integer(found.int64(3) ?? 0), .text(report.status)])
        out.recorded += 1
        out.jobs.insert(job)
        return true
    }

    public func awaitingDelivery(jobID: String) throws(LedgerError) -> [AwaitingRow] {
        try wrap {
            try db.query(#"SELECT "row", message_id, group_id FROM messages WHERE job_id = ? AND state = 'submitted' AND dlr_status IS NULL ORDER BY "row""#,
                         [.text(jobID)])
                .map { AwaitingRow(row: $0.int(0) ?? 0, messageId: $0.string(1), groupId: $0.string(2)) }
        }
    }

    public func awaitingLookups(jobID: String) throws(LedgerError) -> (groups: [String], rows: [Int]) {
        try wrap {
            let groups = try db.query(
                "SELECT DISTINCT group_id FROM messages WHERE job_id = ? AND state = 'submitted' AND dlr_status IS NULL AND group_id IS NOT NULL",
                [.text(jobID)]).compactMap { $0.string(0) }
            let rows = try db.query(
                #"SELECT "row" FROM messages WHERE job_id = ? AND state = 'submitted' AND dlr_status IS NULL AND group_id IS NULL ORDER BY "row""#,
                [.text(jobID)]).compactMap { $0.int(0) }
            return (groups.sorted(), rows)
        }
    }

    public func deliveries(jobID: String, batch: Int?) throws(LedgerError) -> [Int: RowDelivery] {
        try collect(#"SELECT "row", dlr_status, dlr_at FROM messages WHERE job_id = ? AND dlr_status IS NOT NULL"#
            + (batch == nil ? "" : " AND batch = ?"), [.text(jobID)] + (batch.map { [.integer(Int64($0))] } ?? []))
    }

    /// Every final status but DELIVRD and EXPIRED-UNKNOWN is a failure.
    public func failedDeliveries(jobID: String) throws(LedgerError) -> [Int: RowDelivery] {
        try collect(#"SELECT "row", dlr_status, dlr_at FROM messages WHERE job_id = ? AND dlr_status IS NOT NULL AND dlr_status NOT IN (?, ?)"#,
                    [.text(jobID), .text(DeliveryStatus.delivered), .text(DeliveryStatus.expiredUnknown)])
    }

    public func expireDeliveries(jobID: String, at: Int64) throws(LedgerError) -> Int {
        try wrap {
            try db.transaction { () throws(SQLError) -> Int in
                // Two workers expiring one job count its rows once: the second waits here.
                try lockJobRow(jobID: jobID)
                var total = 0
                for r in try db.query(
                    "SELECT batch, COUNT(*) FROM messages WHERE job_id = ? AND state = 'submitted' AND dlr_status IS NULL GROUP BY batch",
                    [.text(jobID)]) {
                    let n = r.int(1) ?? 0
                    total += n
                    try db.execute("INSERT INTO delivery_counts(job_id, batch, status, n) VALUES(?, ?, ?, ?) ON CONFLICT(job_id, batch, status) DO UPDATE SET n = delivery_counts.n + excluded.n",
                                   [.text(jobID), .integer(r.int64(0) ?? 0), .text(DeliveryStatus.expiredUnknown), .integer(Int64(n))])
                }
                try db.execute("UPDATE messages SET dlr_status = ?, dlr_received_at = ? WHERE job_id = ? AND state = 'submitted' AND dlr_status IS NULL",
                               [.text(DeliveryStatus.expiredUnknown), .integer(at), .text(jobID)])
                return total
            }
        }
    }

    private func collect(_ sql: String, _ bindings: [SQLValue]) throws(LedgerError) -> [Int: RowDelivery] {
        var out: [Int: RowDelivery] = [:]
        try wrap {
            try db.forEachRow(sql, bindings) { r in
                out[r.int(0) ?? 0] = RowDelivery(status: r.string(1) ?? "", at: r.int64(2))
            }
        }
        return out
    }

    public func deliveryCounts(jobID: String) throws(LedgerError) -> DeliveryCounts {
        var out = DeliveryCounts()
        let finals = try finalDeliveryCounts(jobID: jobID)
        // Submitted rows per batch, from the index on (job_id, batch, state) alone.
        let submitted = try wrap {
            try db.query("SELECT batch, COUNT(*) FROM messages WHERE job_id = ? AND state = 'submitted' GROUP BY batch", [.text(jobID)])
        }
        for r in submitted {
            let batch = r.int(0) ?? 0
            var pending = r.int(1) ?? 0
            for (status, n) in finals[batch] ?? [:] {
                out.add(batch: batch, status: status, count: n)
                pending -= n
            }
            if pending > 0 { out.add(batch: batch, status: DeliveryStatus.awaiting, count: pending) }
        }
        return out
    }

    public func finalDeliveryCounts(jobID: String) throws(LedgerError) -> [Int: [String: Int]] {
        var out: [Int: [String: Int]] = [:]
        for r in try wrap({ try db.query("SELECT batch, status, n FROM delivery_counts WHERE job_id = ?", [.text(jobID)]) }) {
            out[r.int(0) ?? 0, default: [:]][r.string(1) ?? "", default: 0] += r.int(2) ?? 0
        }
        return out
    }

    public func jobsAwaitingDelivery() throws(LedgerError) -> [String] {
        try wrap {
            try db.query(
                #"SELECT j.id FROM jobs j WHERE EXISTS (SELECT 1 FROM messages m WHERE m.job_id = j.id AND m.state = 'submitted' AND m.dlr_status IS NULL) ORDER BY j.started_at, j.id"#
            ).compactMap { $0.string(0) }
        }
    }
}
