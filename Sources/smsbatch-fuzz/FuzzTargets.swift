import Foundation
import SMSBatch

/// Coverage-guided fuzz targets (`make fuzz`): each feeds arbitrary bytes to one reader and
/// checks what must hold whatever the bytes, not only that nothing crashes.
/// - `csv`: the bytes as a recipient file (raw, or any archive) through ingest → report in a
///   dry run: a file-level rejection or every row in exactly one place.
/// - `number`: a recipient cell: a number read is valid E.164 and reads again as itself.
/// - `config`: a pipeline.yaml: loaded or refused with a ConfigError, never a crash.
enum FuzzTarget: String, CaseIterable {
    case csv, number, config

    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["SMSBATCH_FUZZ_TARGET"] ?? "csv"
        guard let t = FuzzTarget(rawValue: name) else { fatalError("SMSBATCH_FUZZ_TARGET must be one of csv, number, config, not \(name)") }
        return t
    }()

    func run(_ bytes: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .csv: FuzzTarget.csvFile(bytes)
        case .number: FuzzTarget.number(bytes)
        case .config: _ = try? ConfigLoader.parse(yaml: String(decoding: bytes, as: UTF8.self), source: "fuzz.yaml")
        }
    }

    private static let work: String = {
        let dir = (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()) + "/smsbatch-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    private static func csvFile(_ bytes: UnsafeBufferPointer<UInt8>) {
        let path = work + "/input"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
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
