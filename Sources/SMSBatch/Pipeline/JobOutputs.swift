import Foundation

/// The folder a job writes into. With `--out DIR` that folder itself; otherwise a staging
/// folder in the outbox that becomes `outbox/<job id>/` by one rename once the job id (which
/// needs the whole file's SHA-256) is known and every file is complete.
final class JobOutputs: Sendable {
    let dir: String
    private let outbox: String?
    /// BOM and message column of the result CSVs.
    let format: OutputConfig
    /// How report.html writes numbers.
    let locale: NumberLocale

    /// `keepBatches`: leave batch files found in `outDir` alone (a repeat writes only its summary).
    init(config: PipelineConfig, outDir: String?, keepBatches: Bool = false) throws(ReportError) {
        format = config.output
        locale = config.report.locale
        if let outDir {
            dir = outDir
            outbox = nil
        } else {
            let box = config.outbox
            outbox = box
            dir = (box as NSString).appendingPathComponent(".staging-\(getpid())-\(UUID().uuidString.prefix(8))")
        }
        try JobOutputs.makeDirectory((dir as NSString).appendingPathComponent("batches"))
        // A re-run into the same --out folder must not leave batches of an earlier run behind.
        let batches = (dir as NSString).appendingPathComponent("batches")
        for name in keepBatches ? [] :  (try? FileManager.default.contentsOfDirectory(atPath: batches)) ?? [] where name.hasPrefix("batch-") {
            unlink((batches as NSString).appendingPathComponent(name))
        }
    }

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// The send queue's name in the job folder (hidden: it is working state, not a result).
    static let queueName = ".send-queue"

    static func batchName(_ number: Int) -> String { String(format: "batches/batch-%04d.csv", number) }

    /// A result CSV, opened with its BOM (when `output.bom`) and header.
    func csv(_ name: String, header: String) throws(ReportError) -> OutputFile {
        var file = try OutputFile(path: path(name))
        if format.bom { file.plain([0xEF, 0xBB, 0xBF]) }
        file.plain(Array(header.utf8))
        return file
    }

    /// SPEC §7's batch columns, the delivery columns of §11, then the message when
    /// `output.include_message`.
    var batchHeader: String {
        "row,recipient,sender,product,status,message_id,http_status,error_code,error_message,attempts,segments,encoding,scheduled_at,"
            + "dlr_status,dlr_at,dlr_code" + (format.includeMessage ? ",message\n" : "\n")
    }

    /// SPEC §7's duplicates.csv columns, then the message when `output.include_message`.
    var duplicatesHeader: String { "row,first_row,reason,recipient,sender" + (format.includeMessage ? ",message\n" : "\n") }

    /// `mkdir -p`, with the real reason when it fails (a file in the way: "Not a directory").
    static func makeDirectory(_ path: String) throws(ReportError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
            if mkdir(prefix, 0o755) == 0 || errno == EEXIST {
                var st = stat()
                if stat(prefix, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR { throw ReportError(path: prefix, errno: ENOTDIR) }
                continue
            }
            throw ReportError(path: prefix, errno: errno)
        }
    }

    /// Writes summary.json (under a temporary name, renamed when complete).
    func writeSummary(_ summary: JobSummary) throws(ReportError) {
        var file = try OutputFile(path: path("summary.json"))
        try file.write(summary.json.rendered(indent: 2) + "\n")
        try file.commit()
    }

    /// Writes summary.json last and moves a staged folder into place. Returns the folder.
    func publish(jobID: String, summary: inout JobSummary) throws(ReportError) -> String {
        var final = dir
        if let outbox { final = (outbox as NSString).appendingPathComponent(jobID) }
        summary.outputDir = final
        try writeSummary(summary)
        try HTMLReport.write(dir: dir, locale: locale)
        if outbox != nil {
            if FileManager.default.fileExists(atPath: final) { try? FileManager.default.removeItem(atPath: final) }
            if rename(dir, final) != 0 { throw ReportError(path: final, errno: errno) }
        }
        return final
    }

    /// Removes a staging folder after a failure.
    func abandon() {
        if outbox != nil { try? FileManager.default.removeItem(atPath: dir) }
    }
}
