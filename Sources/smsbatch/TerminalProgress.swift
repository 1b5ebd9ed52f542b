import Foundation
import SMSBatch

/// Progress on stderr (SPEC §2): a live line when stderr is a terminal, plain lines
/// otherwise; every note, warning and error as one line `subject: [severity: ]message`.
final class TerminalProgress: ProgressReporter, @unchecked Sendable {
    // @unchecked: reading and sending report from one task at a time; each write is one line.
    private let live = isatty(2) != 0
    private var lastReport = ContinuousClock.now
    private var path = ""
    private var bytes: Int64 = 0
    private var lastSending = ContinuousClock.now
    private var sendingShown = false

    func reading(_ path: String, bytes: Int64) {
        self.path = path
        self.bytes = bytes
        lastReport = .now
        if !live { emit("\(path): reading \(bytes) bytes") }
    }

    /// At most every half second.
    func read(rows: Int, bytesRead: Int64) {
        guard ContinuousClock.now - lastReport > .milliseconds(500) else { return }
        lastReport = .now
        let pct = bytes > 0 ? min(100, Int(bytesRead * 100 / bytes)) : 100
        if live {
            let width = 30
            let filled = width * pct / 100
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            write("\r\(path) [\(bar)] \(pct)% \(rows) rows")
        } else {
            emit("\(path): \(rows) rows, \(pct)%")
        }
    }

    /// A live line on a terminal (every half second), a plain line at most every 5 s otherwise.
    func sending(_ s: SendingStatus) {
        let every: Duration = live ? .milliseconds(500) : .seconds(5)
        guard ContinuousClock.now - lastSending >= every else { return }
        lastSending = .now
        let left = s.secondsLeft.map { "about \(HumanSummary.duration(Int($0.rounded(.up)))) left" } ?? "time left not known yet"
        let parts = ["sending: \(grouped(s.submitted)) of \(grouped(s.total)) submitted", "\(grouped(s.failed)) failed",
                     "\(grouped(Int(s.rowsPerSecond.rounded()))) rows/s", left, "\(grouped(s.retries)) retries", "\(grouped(s.inDoubt)) in doubt"]
        if live {
            sendingShown = true
            write("\r\(s.path): \(parts.joined(separator: " · "))\u{1B}[K")
        } else {
            emit("\(s.path): \(parts.joined(separator: ", "))")
        }
    }

    func endSending() {
        if live && sendingShown { write("\r\u{1B}[K") }
        sendingShown = false
    }

    func finished(_ summary: JobSummary) {
        if live { write("\r\u{1B}[K") }
        emit("\(summary.input): \(summary.status.rawValue), \(summary.rows) rows, outputs in \(summary.outputDir)")
    }

    func note(_ subject: String, _ message: String) { emit("\(subject): \(oneLine(message))") }
    func warning(_ subject: String, _ message: String) { emit("\(subject): warning: \(oneLine(message))") }
    func error(_ subject: String, _ message: String) { emit("\(subject): error: \(oneLine(message))") }

    private func emit(_ line: String) { write(line + "\n") }
    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}

/// One error on stderr, `subject: error: message`: the one place the command line words it.
func report(_ error: any Diagnosable) {
    printError("\(error.subject): error: \(oneLine(error.problem))")
}
