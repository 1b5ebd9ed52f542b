import Foundation
import Testing
@testable import SMSBatch

private func submittedRow(_ row: Int, group: String? = "g1") -> RequestOutcome {
    var o = RequestOutcome(row: row, submitted: true, messageId: "m\(row)", httpStatus: 200, errorCode: "", errorMessage: "", attempts: 1)
    o.groupId = group
    return o
}

/// A ledger with job `j`: rows 2–5 submitted in batch 1 (group g1), row 6 failed, row 7 in doubt.
private func ledgerWithJob(_ kind: LedgerKind, _ dir: TempDir) throws -> any Ledger {
    let ledger = try kind.open(dir, "state.sqlite")
    try ledger.createJob(JobRecord(id: "j", input: "j.csv", sha256: "aa", status: .completed, clock: 0, startedAt: 0))
    let r = try ledger.recordIntent(jobID: "j", batch: 1, rows: [2, 3, 4, 5, 6])
    try ledger.recordAnswer(requestID: r, httpStatus: 200, outcomes: [submittedRow(2), submittedRow(3), submittedRow(4), submittedRow(5, group: nil),
        RequestOutcome(row: 6, submitted: false, messageId: "", httpStatus: 422, errorCode: "E", errorMessage: "bad", attempts: 1)])
    _ = try ledger.recordIntent(jobID: "j", batch: 2, rows: [7])
    return ledger
}

@Suite("Delivery reports in the ledger (SPEC §11)")
struct DeliveryLedgerTests {
    @Test("a row's first final status is recorded once: a duplicate is counted as repeated, a different later one is a conflict and changes nothing",
          arguments: LedgerKind.allCases)
    func finalOnce(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try ledgerWithJob(kind, dir)
        var r = try ledger.recordDeliveries([
            DeliveryReport(messageId: "m2", custom: "", status: "DELIVRD", at: 100),
            DeliveryReport(messageId: "", custom: "j:3", status: "absent-sub", at: 101),
            DeliveryReport(messageId: "m4", custom: "j:4", status: "AWAITING-DLR", at: nil),
        ], receivedAt: 1)
        #expect((r.recorded, r.repeated, r.conflicts.count, r.unmatched, r.notFinal) == (2, 0, 0, 0, 1))
        #expect(r.jobs == ["j"])
        r = try ledger.recordDeliveries([
            DeliveryReport(messageId: "m2", custom: "j:2", status: "DELIVRD", at: 100),
            DeliveryReport(messageId: "m3", custom: "j:3", status: "DELIVRD", at: 300),
        ], receivedAt: 2)
        #expect((r.recorded, r.repeated, r.conflicts.count) == (0, 1, 1))
        #expect(r.conflicts.first?.contains("j:3 is ABSENT-SUB") == true)
        let d = try ledger.deliveries(jobID: "j")
        #expect(d[2] == RowDelivery(status: "DELIVRD", at: 100))
        #expect(d[3] == RowDelivery(status: "ABSENT-SUB", at: 101))
        #expect(d.count == 2)
        #expect(try ledger.awaitingDelivery(jobID: "j").map(\.row) == [4, 5])
        #expect(try ledger.awaitingDelivery(jobID: "j").map(\.groupId) == ["g1", nil])
        let counts = try ledger.deliveryCounts(jobID: "j")
        #expect(counts.total == ["DELIVRD": 1, "ABSENT-SUB": 1, "AWAITING-DLR": 2])
        #expect(counts.batches[1] == counts.total)
        #expect(counts.outcomes() == [.delivered: 1, .failed: 1, .pending: 2])
        #expect(try ledger.jobsAwaitingDelivery() == ["j"])
        // What a pull asks for: row 4's group, and row 5 (no group) by itself.
        let lookups = try ledger.awaitingLookups(jobID: "j")
        #expect(lookups.groups == ["g1"] && lookups.rows == [5])
        #expect(try ledger.failedDeliveries(jobID: "j").keys.sorted() == [3])
        #expect(try ledger.deliveries(jobID: "j", batch: 1).count == 2)
        #expect(try ledger.deliveries(jobID: "j", batch: 2).isEmpty)
        // The counters `jobs` reads agree with the rows.
        #expect(try ledger.finalDeliveryCounts(jobID: "j") == [1: ["DELIVRD": 1, "ABSENT-SUB": 1]])
    }

    @Test("a report for no known message is kept as unmatched, and matched once its message is recorded", arguments: LedgerKind.allCases)
    func unmatchedKept(kind: LedgerKind) throws {
        let dir = TempDir()
        let ledger = try ledgerWithJob(kind, dir)
        // Row 7's request is still unanswered; row 6 failed; x:1 is nobody's.
        let r = try ledger.recordDeliveries([
            DeliveryReport(messageId: "m7", custom: "j:7", status: "DELIVRD", at: 5),
            DeliveryReport(messageId: "", custom: "j:6", status: "DELIVRD", at: 5),
            DeliveryReport(messageId: "zz", custom: "x:1", status: "UNDELIV", at: 5),
        ], receivedAt: 3)
        #expect((r.recorded, r.unmatched) == (0, 3))
        #expect(try ledger.unmatchedCount() == 3)
        #expect(try ledger.matchUnmatched().recorded == 0)
        // Row 7's answer arrives: its report is matched, and leaves the table.
        let doubt = try ledger.inDoubtRequests(jobID: "j")
        try ledger.recordAnswer(requestID: doubt[0].id, httpStatus: 200, outcomes: [submittedRow(7)])
        let matched = try ledger.matchUnmatched()
        #expect(matched.recorded == 1)
        #expect(matched.jobs == ["j"])
        #expect(try ledger.deliveries(jobID: "j")[7]?.status == "DELIVRD")
        #expect(try ledger.unmatchedCount() == 2)
    }

    @Test("statuses: DELIVRD is delivered, the platform's codes are failed, an unknown one is failed-other, AWAITING-DLR is not final")
    func outcomes() {
        #expect(DeliveryStatus.outcome(of: "DELIVRD") == .delivered)
        #expect(DeliveryStatus.outcome(of: "DLT-INV-TMID") == .failed)
        #expect(DeliveryStatus.outcome(of: "WEIRD-NEW") == .failedOther)
        #expect(DeliveryStatus.outcome(of: "AWAITING-DLR") == .pending)
        #expect(DeliveryStatus.outcome(of: nil) == .pending)
        #expect(DeliveryStatus.outcome(of: "EXPIRED-UNKNOWN") == .expired)
        #expect(!DeliveryReport(messageId: "a", custom: "", status: " awaiting-dlr ", at: nil).isFinal)
        #expect(DeliveryReport(messageId: "", custom: "2026:abc:12", status: "x", at: nil).customRow! == ("2026:abc", 12))
    }
}
