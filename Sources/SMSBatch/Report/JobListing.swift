import Foundation

/// What `smsbatch jobs` prints.
public enum JobListing {
    public static func table(_ jobs: [JobRecord]) -> String {
        if jobs.isEmpty { return "no jobs yet" }
        var table = TextTable([("JOB", .left), ("STATUS", .left), ("ROWS", .right), ("TO_SEND", .right),
                               ("SUBMITTED", .right), ("FAILED", .right), ("STARTED", .left), ("FINISHED", .left),
                               ("FILE", .left)])
        for j in jobs {
            table.add([j.id, j.repeatOf != nil ? "repeat" : j.status, grouped(j.rows), grouped(j.toSend),
                       grouped(j.submitted), grouped(j.failed), UTCTime.iso(j.startedAt),
                       j.finishedAt.map(UTCTime.iso) ?? "-", j.input])
        }
        return table.rendered
    }

    /// One job and its batches, from the ledger and the batch files in its output folder.
    public static func detail(_ j: JobRecord) -> String {
        var lines = [
            "job        \(j.id)", "file       \(j.input)", "sha256     \(j.sha256)",
            "status     \(j.status)\(j.repeatOf.map { " (repeat of \($0): nothing sent)" } ?? "")",
            "rows       \(j.rows): valid \(j.valid), invalid \(j.invalid), duplicates \(j.duplicates), to send \(j.toSend)",
            "sent       submitted \(j.submitted), failed \(j.failed)",
            "started    \(UTCTime.iso(j.startedAt))", "finished   \(j.finishedAt.map(UTCTime.iso) ?? "-")",
            "outputs    \(j.outputDir ?? "-")",
        ]
        guard let dir = j.outputDir else { return lines.joined(separator: "\n") }
        let batches = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/batches")) ?? [])
            .filter { $0.hasPrefix("batch-") && $0.hasSuffix(".csv") }.sorted()
        if !batches.isEmpty { lines.append("BATCH            ROWS  SUBMITTED  FAILED  DRY_RUN  SCHEDULED") }
        for b in batches {
            guard let text = try? String(contentsOfFile: dir + "/batches/" + b, encoding: .utf8) else { continue }
            var rows = 0, submitted = 0, failed = 0, dry = 0
            var scheduled = ""
            for line in text.split(separator: "\n").dropFirst() {
                rows += 1
                if line.contains(",submitted,") { submitted += 1 } else if line.contains(",failed,") { failed += 1 } else if line.contains(",dry_run,") { dry += 1 }
                if scheduled.isEmpty, let last = line.split(separator: ",", omittingEmptySubsequences: false).last { scheduled = String(last) }
            }
            lines.append("\(b.padding(toLength: 14, withPad: " ", startingAt: 0)) \(String(rows).leftPad(6)) \(String(submitted).leftPad(10)) \(String(failed).leftPad(7)) \(String(dry).leftPad(8))  \(scheduled.isEmpty ? "at once" : scheduled)")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
