import Foundation

/// What `smsbatch run` was asked to do beyond pipeline.yaml.
public struct RunOptions: Sendable {
    public var outDir: String?
    public var kind: CampaignKind?
    public var product: String?
    public var dryRun = false
    /// Pretend the current time is this (UTC seconds).
    public var now: Int64?
    public var force = false
    /// Seed of the backoff jitter; nil draws one (tests fix it, so retries repeat exactly).
    public var jitterSeed: UInt64?
    /// Where the access token is looked up (SPEC §3); nil: the process's environment.
    /// In-process tests give their own, because changing the process's environment while
    /// other threads read it (libcurl reads proxy variables) can crash.
    public var environment: [String: String]?
    /// The clock of the rate limits and backoff (tests give a virtual one).
    package var time: any MonotonicClock = RealClock()
    /// Where the run counts what it does (Prometheus under `watch --metrics` and
    /// `--metrics-file`); nothing by default.
    public var metrics: PipelineMetrics = .none
    public init() {}
}

/// A job's outcome: its summary and the exit status it calls for (SPEC §9).
public struct JobResult: Sendable {
    public let summary: JobSummary
    public let exitStatus: ExitStatus

    /// Stopped by a signal, or unable to confirm earlier requests: the file stays in
    /// processing/ and the job resumes on the next start.
    public var interrupted: Bool { summary.status == .interrupted }

    init(summary: JobSummary, sendEnd: SendStageEnd? = nil) {
        self.summary = summary
        switch sendEnd {
        case .interrupted: exitStatus = .ok  // SPEC §10: a signal ends the run cleanly; the job resumes next time
        case .credentialsRefused: exitStatus = .credentials
        case .wrongEndpoint: exitStatus = .config
        case .unreachable: exitStatus = .unavailable
        case .ran, nil:
            switch summary.status {
            case .completed, .interrupted: exitStatus = .ok
            case .rejected: exitStatus = .rejected
            case .partial, .failed, .running, .sending: exitStatus = .unavailable
            }
        }
    }
}

/// A run-level error that is not about one file's content.
public enum RunError: Diagnosable {
    /// The input file cannot be opened (exit 66).
    case input(InputError)
    /// An output file cannot be written (exit 74).
    case report(ReportError)
    /// A file that configuration points at is unreadable (66) or breaks a limit (78).
    case configuredFile(any Diagnosable)
    /// A setting that can only be checked at run time (exit 78): about `subject` (a key or flag).
    case setting(subject: String, problem: String)
    /// The state ledger cannot be opened or written (exit 74).
    case ledger(LedgerError)
    /// Another process is running this job (exit 75): try later.
    case busy(subject: String, problem: String)

    private var underlying: (any Diagnosable)? {
        switch self {
        case .input(let e): e
        case .report(let e): e
        case .configuredFile(let e): e
        case .ledger(let e): e
        case .setting, .busy: nil
        }
    }

    public var subject: String {
        switch self {
        case .setting(let subject, _), .busy(let subject, _): subject
        default: underlying!.subject
        }
    }

    public var problem: String {
        switch self {
        case .setting(_, let problem), .busy(_, let problem): problem
        default: underlying!.problem
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .setting: .config
        case .busy: .tryLater
        default: underlying!.exitStatus
        }
    }
}

