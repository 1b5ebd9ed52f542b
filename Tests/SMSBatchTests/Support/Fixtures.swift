import Foundation
import Synchronization
import Testing
internal import CArchive
@testable import SMSBatch
@testable import SMSBatchSandbox

extension Tag {
    /// Tests that run the built binary or a standalone sandbox process, send for seconds, or
    /// kill processes.
    @Tag static var process: Self
}

extension Trait where Self == ConditionTrait {
    /// Process tests (`.process`) run in `make test`, not in `make test-fast`
    /// (`SMSBATCH_FAST=1`): this toolchain's `swift test` cannot skip by tag yet.
    static var notInFastRuns: Self {
        .enabled(if: ProcessInfo.processInfo.environment["SMSBATCH_FAST"] == nil, "a process test: make test runs it, make test-fast does not")
    }
}

/// A fresh temporary folder per test, removed when the test ends.
final class TempDir: Sendable {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "smsbatch-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ name: String, _ text: String) -> String { write(name, Array(text.utf8)) }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = file(name)
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}

/// Archive forms a recipient file arrives in, written with libarchive itself.
enum ArchiveFormat { case raw, zip, tar, sevenZip, cpio, iso9660, ar, xar, warc }
enum ArchiveFilter { case none, gzip, bzip2, xz, zstd }

func writeArchive(_ path: String, format: ArchiveFormat, filter: ArchiveFilter = .none, entries: [(String, [UInt8])]) {
    let a = archive_write_new()
    switch filter {
    case .none: break
    case .gzip: archive_write_add_filter_gzip(a)
    case .bzip2: archive_write_add_filter_bzip2(a)
    case .xz: archive_write_add_filter_xz(a)
    case .zstd: archive_write_add_filter_zstd(a)
    }
    switch format {
    case .raw: archive_write_set_format_raw(a)
    case .zip: archive_write_set_format_zip(a)
    case .tar: archive_write_set_format_pax_restricted(a)
    case .sevenZip: archive_write_set_format_7zip(a)
    case .cpio: archive_write_set_format_cpio_newc(a)
    case .iso9660: archive_write_set_format_iso9660(a)
    case .ar: archive_write_set_format_ar_svr4(a)
    case .xar: archive_write_set_format_xar(a)
    case .warc: archive_write_set_format_warc(a)
    }
    precondition(archive_write_open_filename(a, path) == ARCHIVE_OK, "cannot create \(path)")
    for (name, bytes) in entries {
        let e = archive_entry_new()
        archive_entry_set_pathname(e, name)
        archive_entry_set_size(e, Int64(bytes.count))
        archive_entry_set_filetype(e, 0o100000)
        archive_entry_set_perm(e, 0o644)
        archive_write_header(a, e)
        bytes.withUnsafeBytes { _ = archive_write_data(a, $0.baseAddress, $0.count) }
        archive_entry_free(e)
    }
    archive_write_close(a)
    archive_write_free(a)
}

/// A parsed output CSV: header and rows of strings (RFC 4180, our own writer's dialect).
struct CSVTable {
    var header: [String] = []
    var rows: [[String]] = []

    init(path: String) {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var records: [[String]] = []
        var field: [UInt8] = [], record: [String] = []
        var quoted = false, i = 0
        var b = [UInt8](data)
        // Result CSVs start with a UTF-8 BOM (output.bom); it is no part of the first name.
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { b.removeFirst(3) }
        while i < b.count {
            let c = b[i]
            if quoted {
                if c == 0x22 {
                    if i + 1 < b.count && b[i + 1] == 0x22 { field.append(0x22); i += 1 } else { quoted = false }
                } else { field.append(c) }
            } else if c == 0x22 { quoted = true
            } else if c == 0x2C { record.append(String(decoding: field, as: UTF8.self)); field = []
            } else if c == 0x0A {
                record.append(String(decoding: field, as: UTF8.self)); field = []
                records.append(record); record = []
            } else { field.append(c) }
            i += 1
        }
        if !field.isEmpty || !record.isEmpty { record.append(String(decoding: field, as: UTF8.self)); records.append(record) }
        if let h = records.first { header = h; rows = Array(records.dropFirst()) }
    }

    func column(_ name: String) -> [String] {
        guard let i = header.firstIndex(of: name) else { return [] }
        return rows.map { i < $0.count ? $0[i] : "" }
    }
}

/// What one job left on disk.
struct JobOutput {
    let result: JobResult
    let dir: String
    var summary: JobSummary { result.summary }
    var rejects: CSVTable { CSVTable(path: dir + "/rejects.csv") }
    var duplicates: CSVTable { CSVTable(path: dir + "/duplicates.csv") }
    var batchFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/batches")) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }
    /// All batch rows, in batch order.
    var batchRows: CSVTable {
        var t = CSVTable(path: "/nonexistent")
        for f in batchFiles {
            let b = CSVTable(path: dir + "/batches/" + f)
            t.header = b.header
            t.rows += b.rows
        }
        return t
    }
    var summaryJSON: [String: Any] {
        let data = FileManager.default.contents(atPath: dir + "/summary.json") ?? Data()
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// Row numbers in batches, rejects and duplicates together.
    var accountedRows: [Int] {
        (batchRows.column("row") + rejects.column("row") + duplicates.column("row")).compactMap { Int($0) }
    }

    func reason(ofRow row: Int) -> String? {
        let t = rejects
        return t.rows.first { $0.first == String(row) }.map { $0[1] }
    }
}

/// The environment in-process jobs look their token up in. Tests never change the process's
/// own environment: `setenv` while another thread's `getenv` runs (libcurl reads the proxy
/// variables on every request) can crash the whole test run.
enum TestEnvironment {
    private static let variables = Locked<[String: String]>([:])
    static func set(_ name: String, _ value: String) { variables.withLock { $0[name] = value } }
    static func remove(_ name: String) { _ = variables.withLock { $0.removeValue(forKey: name) } }
    static var current: [String: String] { variables.withLock { $0 } }
}

extension RunOptions {
    /// Options for a job run inside the test process: its token comes from `TestEnvironment`.
    static func inProcess() -> RunOptions {
        var options = RunOptions()
        options.environment = TestEnvironment.current
        return options
    }
}

/// The fixed "now" of the tests: 2026-11-26 10:00 IST (inside the promo window).
let testNow: Int64 = 1_795_667_400

/// Runs one file through the pipeline as `smsbatch run --dry-run --out DIR` does.
func runJob(_ file: String, config: PipelineConfig = PipelineConfig(), in dir: TempDir,
            kind: CampaignKind? = nil, product: String? = nil, now: Int64 = testNow) async throws -> JobOutput {
    var options = RunOptions()
    options.dryRun = true
    options.now = now
    options.kind = kind
    options.product = product
    let out = dir.file("out-" + UUID().uuidString.prefix(8))
    let runner = JobRunner(config: config, options: options, progress: SilentProgress())
    let result = try await runner.run(path: file, outDir: out)
    return JobOutput(result: result, dir: out)
}

/// A CSV with the SPEC's column names and the given data lines.
func recipientCSV(_ lines: [String], header: String = "recipient,sender,message,product") -> String {
    ([header] + lines).joined(separator: "\n") + "\n"
}
