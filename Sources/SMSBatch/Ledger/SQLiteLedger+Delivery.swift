import Foundation

// Delivery reports in the SQLite ledger (SPEC §11): `messages.dlr_status` holds a row's first
// final status; `unmatched` the reports for messages not (yet) known.
extension SQLiteLedger {
    public func recordDeliveries(_ reports: [DeliveryReport], receivedAt: Int64) throws(LedgerError) -> DeliveryRecording {
        guard !reports.isEmpty else { return DeliveryRecording() }
        return try wrap {
            try db.transaction { () throws(SQLiteError) -> DeliveryRecording in
                var out = DeliveryRecording()
                for report in reports {
                    guard report.isFinal else { out.notFinal += 1; continue }
                    if try !Self.apply(db, report, receivedAt: receivedAt, into: &out) {
                        out.unmatched += 1
                        try db.execute(
                            "INSERT INTO unmatched(message_id, custom, status, dlr_at, received_at) VALUES(?, ?, ?, ?, ?)",
                            [.text(report.messageId), .text(report.custom), .text(report.status),
                             report.at.map { .integer($0) } ?? .null, .integer(receivedAt)])
                    }
                }
                return out
            }
        }
    }

    public func matchUnmatched() throws(LedgerError) -> DeliveryRecording {
        try wrap {
            try db.transaction { () throws(SQLiteError) -> DeliveryRecording in
                var out = DeliveryRecording()
                for r in try db.query("SELECT id, message_id, custom, status, dlr_at, received_at FROM unmatched ORDER BY id") {
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
    private static func apply(_ db: SQLiteDatabase, _ report: DeliveryReport, receivedAt: Int64,
                              into out: inout DeliveryRecording) throws(SQLiteError) -> Bool {
        var found: SQLiteRow?
        if !report.messageId.isEmpty {
            found = try db.query(#"SELECT job_id, "row", dlr_status FROM messages WHERE message_id = ? AND state = 'submitted'"#,
                                 [.text(report.messageId)]).first
        }
        if found == nil, let (job, row) = report.customRow {
            found = try db.query(#"SELECT job_id, "row", dlr_status FROM messages WHERE job_id = ? AND "row" = ? AND state = 'submitted'"#,
                                 [.text(job), .integer(Int64(row))]).first
        }
        guard let found, let job = found.string(0), let row = found.int64(1) else { return false }
        if let earlier = found.string(2) {
            if earlier == report.status { out.repeated += 1 } else {
                out.conflicts.append("\(job):\(row) is \(earlier); a later report says \(report.status) (kept \(earlier))")
            }
            return true
        }
        try db.execute(#"UPDATE messages SET dlr_status = ?, dlr_at = ?, dlr_received_at = ? WHERE job_id = ? AND "row" = ?"#,
                       [.text(report.status), report.at.map { .integer($0) } ?? .null, .integer(receivedAt), .text(job), .integer(row)])
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

    public func deliveries(jobID: String) throws(LedgerError) -> [Int: RowDelivery] {
        var out: [Int: RowDelivery] = [:]
        try wrap {
            try db.forEachRow(#"SELECT "row", dlr_status, dlr_at FROM messages WHERE job_id = ? AND dlr_status IS NOT NULL"#, [.text(jobID)]) { c in
                out[Int(c.int64(0))] = RowDelivery(status: c.string(1) ?? "", at: c.isNull(2) ? nil : c.int64(2))
            }
        }
        return out
    }

    public func deliveryCounts(jobID: String) throws(LedgerError) -> DeliveryCounts {
        var out = DeliveryCounts()
        for r in try wrap({
            try db.query("SELECT batch, dlr_status, COUNT(*) FROM messages WHERE job_id = ? AND state = 'submitted' GROUP BY batch, dlr_status",
                         [.text(jobID)])
        }) {
            out.add(batch: r.int(0) ?? 0, status: r.string(1) ?? DeliveryStatus.awaiting, count: r.int(2) ?? 0)
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
