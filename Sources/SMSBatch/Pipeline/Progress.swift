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

    private var lastSending = ContinuousClock.now
    private var sendingShown = false

    /// Called every 0.1 s while sending: a live line on a terminal (every half second), a
    /// plain line at most every 5 s otherwise.
    func sending(path: String, submitted: Int, of total: Int, failed: Int, rowsPerSecond: Double, secondsLeft: Double?,
                 retries: Int, inDoubt: Int) {
        guard !quiet else { return }
        let every: Duration = live ? .milliseconds(500) : .seconds(5)
        guard ContinuousClock.now - lastSending >= every else { return }
        lastSending = .now
        let left = secondsLeft.map { "about \(HumanSummary.duration(Int($0.rounded(.up)))) left" } ?? "time left not known yet"
        let parts = ["sending: \(grouped(submitted)) of \(grouped(total)) submitted", "\(grouped(failed)) failed",
                     "\(grouped(Int(rowsPerSecond.rounded()))) rows/s", left, "\(grouped(retries)) retries", "\(grouped(inDoubt)) in doubt"]
        if live {
            sendingShown = true
            FileHandle.standardError.write(Data("\r\(path): \(parts.joined(separator: " · "))\u{1B}[K".utf8))
        } else {
            emit("\(path): \(parts.joined(separator: ", "))")
        }
    }

    /// Ends the live sending line.
    func endSending() {
        if live && sendingShown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        sendingShown = false
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
