import Foundation

/// The whole of pipeline.yaml (SPEC §3), typed and validated. `PipelineConfig()` holds the
/// built-in defaults; `ConfigLoader` reads a file over them.
public struct PipelineConfig: Sendable, Equatable {
    public var input = InputConfig()
    public var validate = ValidateConfig()
    public var dedupe = DedupeConfig()
    public var caps = CapsConfig()
    public var report = ReportConfig()
    public var split = SplitConfig()
    public var send = SendConfig()
    public var watch = WatchConfig()
    public var state = StateConfig()
    public var output = OutputConfig()
    public var dlr = DLRConfig()

    public init() {}

    /// Where jobs' outputs go without `--out`: `<watch.root>/outbox` (SPEC §7).
    public var outbox: String { (watch.root as NSString).appendingPathComponent("outbox") }

    /// The ledger path: `state.path`, else `<watch.root>/state.sqlite`.
    public var statePath: String { state.path ?? (watch.root as NSString).appendingPathComponent("state.sqlite") }
    /// Where the ledger is, for messages: `state.url` (which holds no password), else the file.
    public var ledgerLocation: String { state.url ?? statePath }
    /// Whether a ledger may already be there: the SQLite file exists, or a server is named.
    public var ledgerExists: Bool { state.url != nil || FileManager.default.fileExists(atPath: statePath) }
}

/// A logical column of the recipient file (SPEC §4).
public enum ColumnRole: String, CaseIterable, Sendable {
    case recipient, sender, message, product
    case scheduleAt = "schedule_at"
    case templateId = "template_id"
    case entityId = "entity_id"
    case ref

    /// The built-in header aliases, the role's own name first.
    public var defaultAliases: [String] {
        switch self {
        // SPEC §4's aliases, then the headers CRM exports write (`Mobile Number`, `SMS Text`).
        case .recipient: ["recipient", "mobile", "mobile no", "phone", "msisdn", "number", "to", "b-nr",
                          "mobile number", "mobile no.", "phone number", "phone no", "phone no.", "contact number"]
        case .sender: ["sender", "sender id", "from", "header", "a-nr"]
        case .message: ["message", "text", "content", "body", "sms", "sms text", "message text"]
        case .product: ["product", "service"]
        case .scheduleAt: ["schedule_at", "time", "schedule"]
        case .templateId: ["template_id", "dlt template id"]
        case .entityId: ["entity_id", "pe id"]
        case .ref: ["ref", "custom", "id"]
        }
    }
}

public enum Delimiter: Sendable, Equatable {
    case auto
    case fixed(UInt8)
}

public struct InputConfig: Sendable, Equatable {
    public var maxFileBytes: Int64 = 209_715_200
    public var maxListBytes: Int64 = 104_857_600
    public var maxExpandedBytes: Int64 = 2_147_483_648
    public var delimiter: Delimiter = .auto
    /// The file's text encoding: UTF-8 (UTF-16 by its BOM) unless set.
    public var encoding: InputEncoding = .auto
    /// A workbook's sheet to read (.xlsx, .ods); nil: the first.
    public var sheet: String?
    /// Extra header aliases per role, added to the built-in ones.
    public var columns: [ColumnRole: [String]] = [:]
    public init() {}

    /// Built-in plus configured aliases for a role.
    public func aliases(for role: ColumnRole) -> [String] { role.defaultAliases + (columns[role] ?? []) }
}

/// A product's sender rule (SPEC §5 "Sender rules").
public enum SenderRule: String, Sendable, Equatable, CaseIterable {
    /// 6 capital letters (T, S).
    case dltHeader = "dlt_header"
    /// 6 digits (P).
    case numeric6 = "numeric6"
    /// 1–11 letters/digits/spaces with at least one letter, or 3–15 digits (G).
    case alphanumeric = "alphanumeric"
    /// A valid E.164 number, `+` optional (WAP, VOC).
    case e164 = "e164"
    /// 1–32 printable characters (RCS, VBR).
    case printable = "printable"
}

/// What a product is, for segment counting and caps.
public enum ProductChannel: String, Sendable, Equatable, CaseIterable {
    case sms, channel, voice
}

public struct ProductRule: Sendable, Equatable {
    public var sender: SenderRule
    public var channel: ProductChannel
    /// Domestic routes accept only home-country recipients (`foreign_recipient`).
    public var domestic: Bool
    public init(sender: SenderRule, channel: ProductChannel, domestic: Bool) {
        self.sender = sender
        self.channel = channel
        self.domestic = domestic
    }
}

public enum PromoAction: String, Sendable, Equatable { case `defer`, reject }

public struct PromoWindow: Sendable, Equatable {
    /// Minutes after local midnight; inside when start ≤ local time < end.
    public var startMinute = 9 * 60
    public var endMinute = 21 * 60
    public var timezone = "Asia/Kolkata"
    public var action: PromoAction = .defer
    public init() {}
}

public struct ValidateConfig: Sendable, Equatable {
    public var homeCountry = "IN"
    public var maxInvalidRatio = 0.2
    public var maxSegments = 10
    public var optoutList: String? = nil
    public var products: [String: ProductRule] = ValidateConfig.defaultProducts
    public var defaultProduct = "T"
    public var defaultSender: String? = nil
    public var timezone = "Asia/Kolkata"
    public var promoWindow = PromoWindow()
    public init() {}

    public static let defaultProducts: [String: ProductRule] = [
        "T": ProductRule(sender: .dltHeader, channel: .sms, domestic: true),
        "P": ProductRule(sender: .numeric6, channel: .sms, domestic: true),
        "S": ProductRule(sender: .dltHeader, channel: .sms, domestic: true),
        "G": ProductRule(sender: .alphanumeric, channel: .sms, domestic: false),
        "VOC": ProductRule(sender: .e164, channel: .voice, domestic: false),
        "WAP": ProductRule(sender: .e164, channel: .channel, domestic: false),
        "RCS": ProductRule(sender: .printable, channel: .channel, domestic: false),
        "VBR": ProductRule(sender: .printable, channel: .channel, domestic: false),
    ]
}

public struct DedupeConfig: Sendable, Equatable {
    /// Seconds; 0 turns the cross-job check off.
    public var window = 3600
    public init() {}
}

public enum CampaignKind: String, Sendable, Equatable { case quick, bulk }
public enum OverCapAction: String, Sendable, Equatable { case split, reject }

public struct CapsConfig: Sendable, Equatable {
    public static let platformQuick = 50_000
    public static let platformBulk = 500_000
    public static let platformChannel = 200_000
    public static let platformVoice = 50_000

    public var quick = CapsConfig.platformQuick
    public var bulk = CapsConfig.platformBulk
    public var channel = CapsConfig.platformChannel
    public var voice = CapsConfig.platformVoice
    public var overCap: OverCapAction = .split
    public var kind: CampaignKind = .bulk
    public init() {}
}

public enum Provider: String, Sendable, Equatable {
    case mobtexting, bics
    /// The largest split-schedule batch the provider accepts.
    public var maxBatchSize: Int { self == .bics ? 100_000 : 500_000 }
}

public enum SplitStart: Sendable, Equatable {
    case now
    /// Seconds since 1970 (UTC).
    case at(Int64)
}

public struct SplitConfig: Sendable, Equatable {
    public var provider: Provider = .mobtexting
    public var batchSize = 10_000
    /// Seconds, 300–3600.
    public var interval = 300
    public var start: SplitStart = .now
    /// Seconds; the platform's "less than 3 months".
    public var maxAhead = 90 * 86_400
    public init() {}
}

public enum AuthPlacement: String, Sendable, Equatable { case header, query }

public struct SendConfig: Sendable, Equatable {
    public var endpoint = "sandbox"
    public var tokenEnv = "SMSBATCH_TOKEN"
    public var auth: AuthPlacement = .header
    /// Sends (POST) a minute; any positive number: the account's limit is whatever the
    /// provider granted it. 0 = no limit (built-in sandbox only).
    public var requestsPerMinute = 600
    /// Lookups (GET `auth/me`, `sms/status`, `finance/balance`) a minute: the platform's
    /// published GET limit, raised per account on request. Shares nothing with sends.
    public var statusRequestsPerMinute = 1000
    public var nodesPerRequest = 500
    public var concurrency = 4
    public var maxAttempts = 5
    /// Seconds.
    public var timeout = 30
    public init() {}
}

public struct WatchConfig: Sendable, Equatable {
    public var root = "./spool"
    /// Seconds.
    public var settle = 2
    public init() {}
}

/// How result CSVs are written (beyond SPEC §3: SPEC §7 allows both).
/// How report.html writes numbers: `en` groups by thousands (1,234,567), `en-IN` the
/// Indian way (12,34,567).
public enum NumberLocale: String, Sendable, Equatable, CaseIterable {
    case international = "en", indian = "en-IN"

    public func grouped(_ n: Int) -> String {
        guard self == .indian else { return SMSBatch.grouped(n) }
        let digits = Array(String(n.magnitude))
        var out = ""
        for (i, c) in digits.enumerated() {
            let left = digits.count - i
            // The last three digits, then groups of two.
            if i > 0 && (left == 3 || (left > 3 && (left - 3) % 2 == 0)) { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }
}

public struct ReportConfig: Sendable, Equatable {
    /// Digit grouping of report.html's numbers.
    public var locale: NumberLocale = .international
    public init() {}
}

public struct OutputConfig: Sendable, Equatable {
    /// Start result CSVs with a UTF-8 BOM, so spreadsheets read them as UTF-8.
    public var bom = true
    /// Carry the message in batch files and duplicates.csv, after the SPEC's columns.
    public var includeMessage = true
    public init() {}
}

/// Delivery reports (SPEC §11): how `watch`/`drain` pull them and what `webhook` accepts.
public struct DLRConfig: Sendable, Equatable {
    /// Seconds between pulls by `watch` (and the least age of a job's last pull for `drain`).
    public var pollEvery = 300
    /// Seconds after a job's last batch when rows still without a final status are reported
    /// `EXPIRED-UNKNOWN` and no longer pulled.
    public var stopAfter = 72 * 3600
    /// The environment variable holding the bearer secret the provider's pushes must carry.
    public var webhookSecretEnv = "SMSBATCH_WEBHOOK_SECRET"
    /// Where `smsbatch webhook` listens (a reverse proxy in front terminates TLS).
    public var listen = "127.0.0.1"
    public var port = 8089
    public init() {}
}

public struct StateConfig: Sendable, Equatable {
    /// The SQLite file (one host); nil: `<watch.root>/state.sqlite`.
    public var path: String? = nil
    /// `postgres://user@host:port/db`: the ledger on PostgreSQL, shared by every worker
    /// that names it (several hosts); nil: SQLite at `path`.
    public var url: String? = nil
    /// The environment variable holding the PostgreSQL password (never written in the file).
    public var passwordEnv = "SMSBATCH_STATE_PASSWORD"
    /// Seconds a worker's hold on a job lasts unless renewed (PostgreSQL): a worker that
    /// dies loses its jobs to the others after this long.
    public var lease = 30
    public init() {}
}
