import Synchronization

/// How a command ends (SPEC §9: sysexits), with the codes beyond the SPEC's table.
public enum ExitStatus: Int32, Sendable, Comparable, CaseIterable {
    /// Every job completed (or a dry run, a repeat, a stop by a signal).
    case ok = 0
    /// A bad flag or argument.
    case usage = 64
    /// A file was rejected as a whole (EX_DATAERR).
    case rejected = 65
    /// An input file (or the configured opt-out list) is missing or unreadable.
    case noInput = 66
    /// Rows could not be submitted after retries, or the provider cannot be reached.
    case unavailable = 69
    /// The sandbox could not start (EX_OSERR).
    case osError = 71
    /// The spool folders cannot be created (EX_CANTCREAT).
    case cannotCreate = 73
    /// The ledger or an output file cannot be written (EX_IOERR).
    case ioError = 74
    /// Another process holds the spool or the job; try later (EX_TEMPFAIL).
    case tryLater = 75
    /// The provider refused the credentials (EX_NOPERM).
    case credentials = 77
    /// A configuration error (EX_CONFIG).
    case config = 78

    public static func < (a: ExitStatus, b: ExitStatus) -> Bool { a.rawValue < b.rawValue }
}

/// An error a person can act on: what it is about (a path, `path:line`, a flag) and what is
/// wrong, lowercase, with the fix where there is one. The command line writes it as
/// `subject: error: message`, and is the only place that does.
public protocol Diagnosable: Error, CustomStringConvertible {
    /// What it is about: a path, `path:line`, a flag.
    var subject: String { get }
    /// What is wrong, and the fix where there is one.
    var problem: String { get }
    var exitStatus: ExitStatus { get }
}

extension Diagnosable {
    public var description: String { "\(subject): \(problem)" }
}

/// What a running job tells the person watching: the command line renders it on stderr,
/// tests record it. Every line is about a subject (a file, a folder, a job).
public protocol ProgressReporter: AnyObject, Sendable {
    /// A file starts being read.
    func reading(_ path: String, bytes: Int64)
    /// Rows read so far; called once per block of rows.
    func read(rows: Int, bytesRead: Int64)
    /// Called every 0.1 s while a job sends.
    func sending(_ status: SendingStatus)
    /// Sending is over (a live line is cleared).
    func endSending()
    /// A job ended.
    func finished(_ summary: JobSummary)
    /// Something worth knowing that needs nothing done.
    func note(_ subject: String, _ message: String)
    func warning(_ subject: String, _ message: String)
    func error(_ subject: String, _ message: String)
}

/// Where a send stands, for the progress line.
public struct SendingStatus: Sendable {
    public var path: String
    public var submitted: Int
    public var total: Int
    public var failed: Int
    public var rowsPerSecond: Double
    /// The estimated time left, nil until the provider's answer time is measured.
    public var secondsLeft: Double?
    public var retries: Int
    public var inDoubt: Int
}

/// Shows nothing and keeps the notes, warnings and errors (tests, library users).
public final class SilentProgress: ProgressReporter {
    public struct Line: Sendable, Equatable {
        public enum Severity: Sendable { case note, warning, error }
        public let severity: Severity
        public let subject: String
        public let message: String
    }

    private let recorded = Locked<[Line]>([])

    public init() {}

    /// Everything reported so far, in order.
    public var lines: [Line] { recorded.withLock { $0 } }

    public func reading(_ path: String, bytes: Int64) {}
    public func read(rows: Int, bytesRead: Int64) {}
    public func sending(_ status: SendingStatus) {}
    public func endSending() {}
    public func finished(_ summary: JobSummary) {}
    public func note(_ subject: String, _ message: String) { recorded.withLock { $0.append(Line(severity: .note, subject: subject, message: message)) } }
    public func warning(_ subject: String, _ message: String) { recorded.withLock { $0.append(Line(severity: .warning, subject: subject, message: message)) } }
    public func error(_ subject: String, _ message: String) { recorded.withLock { $0.append(Line(severity: .error, subject: subject, message: message)) } }
}

/// A message for one stderr line: line breaks and other controls written as escapes.
public func oneLine(_ text: String) -> String {
    var out = ""
    for u in text.unicodeScalars {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20 || u.value == 0x7F: out += String(format: "\\x%02x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out
}
