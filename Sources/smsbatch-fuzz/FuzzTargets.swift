import Foundation
import SMSBatch
import SMSBatchSandbox

/// Coverage-guided fuzz targets (`make fuzz`): each feeds arbitrary bytes to one reader and
/// checks what must hold whatever the bytes, not only that nothing crashes.
/// - `csv`: the bytes as a recipient file (raw, or any archive) through ingest → report in a
///   dry run: a file-level rejection or every row in exactly one place.
/// - `number`: a recipient cell: a number read is valid E.164 and reads again as itself.
/// - `config`: a pipeline.yaml: loaded or refused with a ConfigError, never a crash.
/// - `sheet`: a spreadsheet's XML: the first byte picks .xlsx or .ods; the bytes up to a
///   `\0\0` are the sheet (xlsx) or content.xml (ods), the rest the shared-strings table; a
///   workbook around them is zipped here, and the job must hold as for `csv`.
/// - `http`: the first byte picks: the rest sent raw to the sandbox's HTTP server (each
///   answer a well-formed HTTP/1.1 response, and the server still answers afterwards), or
///   read as a pushed delivery-report body (refused, or every report has a status and an id
///   or custom to match it by).
enum FuzzTarget: String, CaseIterable {
    case csv, number, config, sheet, http

    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["SMSBATCH_FUZZ_TARGET"] ?? "csv"
        guard let t = FuzzTarget(rawValue: name) else { fatalError("SMSBATCH_FUZZ_TARGET must be one of csv, number, config, sheet, http, not \(name)") }
        return t
    }()

    func run(_ bytes: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .csv: FuzzTarget.csvFile(bytes)
        case .number: FuzzTarget.number(bytes)
        case .config: _ = try? ConfigLoader.parse(yaml: String(decoding: bytes, as: UTF8.self), source: "fuzz.yaml")
        case .sheet: FuzzTarget.sheet(bytes)
        case .http: FuzzTarget.http(bytes)
        }
    }

    /// The sandbox the `http` target talks to: in this process, on loopback.
    private static let sandbox: SandboxServer = {
        var options = SandboxOptions(token: "fuzz-token")
        options.rateLimit = 0
        options.dlrDelay = 0
        let server = SandboxServer(options: options)
        _ = try! server.start()
        return server
    }()

    private static func http(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let first = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        if first & 1 == 1 {
            guard let read = try? WebhookPayload.read(rest) else { return }
            precondition(!read.reports.isEmpty, "a body read with no report in it")
            for r in read.reports {
                precondition(!r.status.trimmingCharacters(in: .whitespaces).isEmpty, "a report without a status")
                precondition(!r.messageId.isEmpty || !r.custom.isEmpty, "a report with nothing to match it by")
            }
            return
        }
        let answer = exchange(rest)
        // Whatever came back is whole answers: each starts with a status line.
        if !answer.isEmpty {
            let text = String(decoding: answer.prefix(12), as: UTF8.self)
            precondition(text.hasPrefix("HTTP/1.1 ") && text.dropFirst(9).prefix(3).allSatisfy(\.isNumber), "not an HTTP answer: \(text)")
        }
        let health = exchange(Array("GET /api/v2/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer fuzz-token\r\nConnection: close\r\n\r\n".utf8))
        precondition(String(decoding: health.prefix(12), as: UTF8.self) == "HTTP/1.1 200", "the sandbox no longer answers")
    }

    /// Sends `request` on a fresh connection, ends the sending side, and reads until the
    /// server closes (at most 5 s).
    private static func exchange(_ request: [UInt8]) -> [UInt8] {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = sandbox.port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var fd: Int32 = -1
        // Thousands of connections a second: a closed one must leave no TIME_WAIT behind
        // (linger 0), and a moment without a free local port is waited out, not a finding.
        for attempt in 0..<100 {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            precondition(fd >= 0)
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if connected == 0 { break }
            close(fd)
            fd = -1
            precondition(attempt < 99 && (errno == EADDRNOTAVAIL || errno == EAGAIN), "cannot reach the sandbox: \(String(cString: strerror(errno)))")
            usleep(100_000)
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        return answer
    }

    private static func sheet(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let first = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        var cut = rest.count
        for i in 0..<max(0, rest.count - 1) where rest[i] == 0 && rest[i + 1] == 0 { cut = i; break }
        let main = Array(rest[..<cut]), strings = cut + 2 <= rest.count ? Array(rest[(cut + 2)...]) : []
        let entries: [(String, [UInt8])]
        if first & 1 == 0 {
            let ns = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
            entries = [
                ("xl/workbook.xml", Array("<workbook \(ns) xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"S\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>".utf8)),
                ("xl/_rels/workbook.xml.rels", Array("<Relationships><Relationship Id=\"rId1\" Type=\"x/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".utf8)),
                ("xl/styles.xml", Array("<styleSheet \(ns)><numFmts><numFmt numFmtId=\"164\" formatCode=\"dd/mm/yyyy hh:mm\"/></numFmts><cellXfs><xf numFmtId=\"0\"/><xf numFmtId=\"164\"/><xf numFmtId=\"3\"/></cellXfs></styleSheet>".utf8)),
                ("xl/worksheets/sheet1.xml", main),
                ("xl/sharedStrings.xml", strings),
            ]
        } else {
            entries = [("mimetype", Array("application/vnd.oasis.opendocument.spreadsheet".utf8)), ("content.xml", main)]
        }
        let path = work + (first & 1 == 0 ? "/input.xlsx" : "/input.ods")
        _ = FileManager.default.createFile(atPath: path, contents: Data(StoredZip.make(entries)))
        job(path)
    }

    private static let work: String = {
        let dir = (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()) + "/smsbatch-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    private static func csvFile(_ bytes: UnsafeBufferPointer<UInt8>) {
        let path = work + "/input"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        job(path)
    }

    /// Runs the file at `path` as a dry-run job and checks the accounting invariant.
    private static func job(_ path: String) {
        var options = RunOptions()
        options.dryRun = true
        options.now = 1_795_667_400
        var config = PipelineConfig()
        config.input.maxExpandedBytes = 1 << 24  // a zip bomb stops at 16 MiB here
        let out = work + "/out"
        try? FileManager.default.removeItem(atPath: out)
        let run = OneRun(JobRunner(config: config, options: options, progress: SilentProgress()))
        let done = DispatchSemaphore(value: 0)
        Task { [run] in
            do { run.result = .success(try await run.runner.run(path: path, outDir: out)) } catch { run.result = .failure(error) }
            done.signal()
        }
        done.wait()
        guard case .success(let job)? = run.result else { return }  // unreadable input: a clear error
        let s = job.summary
        precondition(s.rows == s.valid + s.invalid, "rows \(s.rows) != valid \(s.valid) + invalid \(s.invalid)")
        precondition(s.invalid == s.invalidByReason.values.reduce(0, +), "invalid_by_reason does not add up")
        precondition(s.duplicates <= s.valid, "more duplicates than valid rows")
        if s.status != .rejected {
            precondition(s.plan.reduce(0) { $0 + $1.rows } == s.toSend, "the batches hold \(s.plan.reduce(0) { $0 + $1.rows }) rows, to_send is \(s.toSend)")
        }
    }

    private static func number(_ bytes: UnsafeBufferPointer<UInt8>) {
        let home = HomeCountry(iso: "IN")!
        guard let n = RecipientNormalizer.normalizePasted(bytes, home: home) else { return }
        precondition((8...15).contains(n.digitCount), "\(n) is no E.164 number")
        let again = Array(n.description.utf8).withUnsafeBufferPointer { RecipientNormalizer.normalize($0, home: home) }
        precondition(again == n, "\(n) reads back as \(again.map(\.description) ?? "nothing")")
    }
}

/// A zip with its entries stored (not compressed): enough for a workbook around fuzzed XML.
enum StoredZip {
    static func make(_ entries: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [], directory: [UInt8] = []
        func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func u32(_ v: UInt32, _ b: inout [UInt8]) { for k in 0..<4 { b.append(UInt8(v >> (8 * UInt32(k)) & 0xFF)) } }
        for (name, data) in entries {
            let offset = UInt32(out.count), crc = crc32(data), n = Array(name.utf8)
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0, &out)
            u32(crc, &out); u32(UInt32(data.count), &out); u32(UInt32(data.count), &out); u16(n.count, &out); u16(0, &out)
            out += n + data
            u32(0x0201_4B50, &directory); u16(20, &directory); u16(20, &directory); u16(0, &directory); u16(0, &directory)
            u16(0, &directory); u16(0, &directory); u32(crc, &directory); u32(UInt32(data.count), &directory); u32(UInt32(data.count), &directory)
            u16(n.count, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u16(0, &directory); u32(0, &directory)
            u32(offset, &directory)
            directory += n
        }
        let at = UInt32(out.count)
        out += directory
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(entries.count, &out); u16(entries.count, &out)
        u32(UInt32(directory.count), &out); u32(at, &out); u16(0, &out)
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}

/// One job run from the fuzzer's synchronous callback.
final class OneRun: @unchecked Sendable {
    // @unchecked: written by the task, read after the semaphore says it is done.
    let runner: JobRunner
    var result: Result<JobResult, any Error>?
    init(_ runner: JobRunner) { self.runner = runner }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.selected.run(UnsafeBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
/// libFuzzer's driver, called from our own entry point (SwiftPM names every executable's).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
#endif

/// Built with the fuzzer (`make fuzz`): libFuzzer's driver. Built without it: runs the given
/// files (a corpus, a crash found) through the same checks, so a finding can be replayed with
/// an ordinary build.
@main
struct FuzzMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, fuzzOne))
        #else
        let files = CommandLine.arguments.dropFirst()
        for path in files {
            let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
            bytes.withUnsafeBufferPointer { FuzzTarget.selected.run($0) }
        }
        print("\(FuzzTarget.selected.rawValue): \(files.count) inputs, every check held")
        #endif
    }
}
