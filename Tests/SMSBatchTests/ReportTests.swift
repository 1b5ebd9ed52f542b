import Foundation
import Testing
@testable import SMSBatch

@Suite("Report: what the operator reads")
struct ReportTests {
    @Test("every reason label is printed whole in the plan, repeat_within_window included")
    func wholeLabels() {
        var s = JobSummary()
        s.duplicatesByReason = ["in_file": 2, "repeat_within_window": 3]
        s.invalidByReason = [.outsidePromoWindow: 4]
        let lines = HumanSummary.plan(s, config: PipelineConfig()).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains { $0.hasPrefix("duplicate repeat_within_window ") && $0.hasSuffix(" 3") })
        #expect(lines.contains { $0.hasPrefix("duplicate in_file ") && $0.hasSuffix(" 2") })
        #expect(lines.contains { $0.hasPrefix("outside_promo_window ") && $0.hasSuffix(" 4") })
    }

    @Test("the jobs table keeps a space between columns however long the values")
    func jobsColumns() {
        let job = JobRecord(id: "20261126T043000Z-0123abcd", input: "spool/processing/a-very-long-campaign-name.csv", sha256: "x",
                            status: .completed, clock: 0, rows: 1_234_567, toSend: 1_234_000, submitted: 1_234_000,
                            startedAt: 1_795_667_400, finishedAt: 1_795_667_500)
        let lines = JobListing.table([JobView(record: job, status: job.status, submitted: job.submitted, failed: job.failed, inDoubt: 0)]).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let cells = lines[1].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        #expect(cells.contains("1,234,567"))
        #expect(cells.contains("completed"))
        #expect(cells.contains("20261126T043000Z-0123abcd"))
        // Each header starts where its column starts.
        let header = lines[0]
        for name in ["STATUS", "STARTED", "FILE"] {
            let at = header.range(of: name)!.lowerBound.utf16Offset(in: header)
            let before = lines[1].utf16.index(lines[1].startIndex, offsetBy: at - 1)
            #expect(lines[1][before] == " ", "\(name) column runs into the one before it")
        }
    }

    @Test("counts are grouped by thousands", arguments: [(0, "0"), (999, "999"), (1000, "1,000"), (28354, "28,354"), (1_234_567, "1,234,567")])
    func grouping(n: Int, text: String) {
        #expect(grouped(n) == text)
    }
}
