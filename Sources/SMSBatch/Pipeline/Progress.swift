import Foundation

/// Progress on stderr: a live line when stderr is a terminal, plain lines otherwise (SPEC §2).
public final class Progress: @unchecked Sendable {
    // @unchecked: used from the one thread that runs the job; stderr writes are atomic lines.
    private let live: Bool
    private let quiet: Bool
    private var lastReport = ContinuousClock.now
    private var path = ""
    private var bytes: Int64 = 0

    public init(quiet: Bool = false) {
        live = isatty(2) != 0
        self.quiet = quiet
    }

    public func warn(_ line: String) { emit(line) }

    func start(path: String, bytes: Int64) {
        self.path = path
        self.bytes = bytes
        lastReport = .now
        if !live { emit("\(path): reading \(bytes) bytes") }
    }

    /// Called once per block of rows; reports at most every half second.
    func rows(_ rows: Int, bytesRead: Int64) {
        guard !quiet, ContinuousClock.now - lastReport > .milliseconds(500) else { return }
        lastReport = .now
        let pct = bytes > 0 ? min(100, Int(bytesRead * 100 / bytes)) : 100
        if live {
            let width = 30
            let filled = width * pct / 100
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r\(path) [\(bar)] \(pct)% \(rows) rows".utf8))
        } else {
            emit("\(path): \(rows) rows, \(pct)%")
        }
    }

    func finish(path: String, summary: JobSummary) {
        if live && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        emit("\(path): \(summary.status.rawValue), \(summary.rows) rows, outputs in \(summary.outputDir)")
    }

    private func emit(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
