import Foundation
import Yams

/// Reads pipeline.yaml (SPEC §3) over the built-in defaults, refusing anything it does not
/// know: an unknown key, a wrong type or a value out of range names the key and its line.
///
/// Choices beyond the SPEC's words:
/// - Sizes take a plain integer or a binary suffix: `200MB` = `200MiB` = 209715200.
/// - Durations take `30s`, `5m`, `1h`, `90d`, units run together (`1h30m`); a bare number is seconds.
/// - `validate.products`, when given, replaces the built-in set; a listed code's fields default
///   from the built-in product of that code, if any.
/// - `input.columns` adds aliases to the built-in ones; listing a built-in alias is harmless.
/// - An empty file, a `null` document or an empty section means defaults.
public enum ConfigLoader {
    /// Loads `path`, or `./pipeline.yaml` when `path` is nil.
    ///
    /// - Returns: the defaults when `path` is nil and there is no `./pipeline.yaml`.
    /// - Throws: `ConfigError` (`.unreadable` when an explicit path is missing or unreadable).
    public static func load(path: String?) throws(ConfigError) -> PipelineConfig {
        let file = path ?? "pipeline.yaml"
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory)
        if path == nil && !exists { return PipelineConfig() }
        func unreadable(_ why: String) -> ConfigError { ConfigError(.unreadable, message: why, source: file) }
        guard exists else {
            throw unreadable("no such file; give an existing path to -c/--config, or leave the option out for the built-in defaults")
        }
        guard !isDirectory.boolValue else { throw unreadable("is a directory, not a yaml file") }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw unreadable("cannot be read; check its permissions")
        }
        guard let text = String(validating: data, as: UTF8.self) else { throw unreadable("is not UTF-8 text") }
        return try parse(yaml: text, source: file)
    }

    /// Parses the text of a pipeline.yaml; `source` names it in errors.
    ///
    /// - Throws: `ConfigError` for bad YAML or any key, type or value it refuses.
    public static func parse(yaml: String, source: String) throws(ConfigError) -> PipelineConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw syntaxError(error, yaml: yaml, source: source)
        }
        guard let root else { return PipelineConfig() }
        let doc = ConfigNode(node: root, path: "", line: root.mark?.line, source: source)

        var c = PipelineConfig()
        try doc.each(Keys.sections) { key, v throws(ConfigError) in
            switch key {
            case "input": c.input = try input(v)
            case "validate": c.validate = try validate(v)
            case "dedupe": c.dedupe = try dedupe(v)
            case "caps": c.caps = try caps(v)
            case "split": c.split = try split(v)
            case "send": c.send = try send(v)
            case "watch": c.watch = try watch(v)
            case "state": c.state = try state(v)
            case "output": c.output = try output(v)
            case "report": c.report = try report(v)
            case "dlr": c.dlr = try dlr(v)
            default: break  // each() refused unknown keys
            }
        }
        return c
    }

    /// The keys of each mapping, named as in SPEC §3.
    enum Keys {
        static let sections = ["input", "validate", "dedupe", "caps", "split", "send", "watch", "state", "output", "report", "dlr"]
        static let report = ["locale"]
        static let dlr = ["poll_every", "stop_after", "webhook_secret_env", "listen", "port"]
        static let input = ["max_file_bytes", "max_list_bytes", "max_expanded_bytes", "delimiter", "encoding", "sheet", "columns"]
        static let validate = ["home_country", "max_invalid_ratio", "max_segments", "optout_list", "products",
                               "default_product", "default_sender", "timezone", "promo_window"]
        static let product = ["sender", "channel", "domestic"]
        static let promoWindow = ["start", "end", "timezone", "action"]
        static let dedupe = ["window"]
        static let caps = ["quick", "bulk", "channel", "voice", "over_cap", "kind"]
        static let split = ["provider", "batch_size", "interval", "start", "max_ahead"]
        static let send = ["endpoint", "token_env", "auth", "requests_per_minute", "status_requests_per_minute", "nodes_per_request",
                           "concurrency", "max_attempts", "timeout"]
        static let watch = ["root", "settle"]
        static let state = ["path", "url", "password_env", "lease"]
        static let output = ["bom", "include_message"]
    }

    // MARK: - Sections

    static func input(_ n: ConfigNode) throws(ConfigError) -> InputConfig {
        var c = InputConfig()
        try n.each(Keys.input) { key, v throws(ConfigError) in
            switch key {
            case "max_file_bytes": c.maxFileBytes = try v.bytes()
            case "max_list_bytes": c.maxListBytes = try v.bytes()
            case "max_expanded_bytes": c.maxExpandedBytes = try v.bytes()
            case "delimiter": c.delimiter = try delimiter(v)
            case "encoding": c.encoding = try v.choice(InputEncoding.allCases)
            case "sheet": c.sheet = try v.optionalString()
            case "columns": c.columns = try columns(v)
            default: break
            }
        }
        return c
    }

    static func delimiter(_ v: ConfigNode) throws(ConfigError) -> Delimiter {
        switch try v.string() {
        case "auto": return .auto
        case ",": return .fixed(UInt8(ascii: ","))
        case ";": return .fixed(UInt8(ascii: ";"))
        case "\t", "tab", "\\t": return .fixed(UInt8(ascii: "\t"))
        case "|": return .fixed(UInt8(ascii: "|"))
        default: throw v.error(.outOfRange, "\(v.shown) is not one of: auto, \",\", \";\", \"\\t\" (or tab), \"|\"")
        }
    }

    /// Extra aliases per role. Aliases the role already has built in are dropped (compared as
    /// §4 matches headers), so the shipped file can list them and still equal the defaults.
    static func columns(_ n: ConfigNode) throws(ConfigError) -> [ColumnRole: [String]] {
        func folded(_ s: String) -> String { s.lowercased().filter { !" _-".contains($0) } }
        var out: [ColumnRole: [String]] = [:]
        for (name, v) in try n.entries() {
            guard let role = ColumnRole(rawValue: name) else {
                throw v.error(.unknownKey, "unknown column role; input.columns has: "
                    + ColumnRole.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let items: [ConfigNode]
            if case .sequence(let seq) = v.node {
                items = seq.enumerated().map { i, node in
                    ConfigNode(node: node, path: "\(v.path)[\(i)]", line: node.mark?.line ?? v.line, source: v.source)
                }
            } else {
                items = [v]
            }
            var seen = Set(role.defaultAliases.map(folded))
            var extra: [String] = []
            for item in items {
                let alias = try item.nonEmptyString().trimmingCharacters(in: .whitespaces)
                if seen.insert(folded(alias)).inserted { extra.append(alias) }
            }
            if !extra.isEmpty { out[role] = extra }
        }
        return out
    }

    static func validate(_ n: ConfigNode) throws(ConfigError) -> ValidateConfig {
        var c = ValidateConfig()
        var defaultProduct: ConfigNode?, products: ConfigNode?
        try n.each(Keys.validate) { key, v throws(ConfigError) in
            switch key {
            case "home_country":
                let iso = try v.string().trimmingCharacters(in: .whitespaces)
                guard let country = HomeCountry(iso: iso) else {
                    throw v.error(.outOfRange, "\(v.shown) is not a country smsbatch knows; use an ISO 3166 code such as IN, GB or US")
                }
                c.homeCountry = country.iso
            case "max_invalid_ratio": c.maxInvalidRatio = try v.double(in: 0...1)
            case "max_segments":
                c.maxSegments = try v.int(in: 1...255, "a concatenated sms has at most 255 parts")
            case "optout_list": c.optoutList = try v.optionalString()
            case "products": c.products = try productRules(v); products = v
            case "default_product":
                c.defaultProduct = try v.nonEmptyString().trimmingCharacters(in: .whitespaces).uppercased()
                defaultProduct = v
            case "default_sender": c.defaultSender = try v.optionalString()?.trimmingCharacters(in: .whitespaces)
            case "timezone": c.timezone = try v.timeZone()
            case "promo_window": c.promoWindow = try promoWindow(v)
            default: break
            }
        }
        // Checked after the loop so the order of the two keys does not matter.
        if c.products[c.defaultProduct] == nil, let at = defaultProduct ?? products {
            let codes = c.products.keys.sorted().joined(separator: ", ")
            throw ConfigError(.outOfRange, keyPath: "validate.default_product", line: at.line,
                              message: "\(c.defaultProduct) is not one of validate.products (\(codes))", source: n.source)
        }
        return c
    }

    /// The product set. Given, it replaces the built-in one (so a code can be withdrawn);
    /// each entry's fields default from the built-in product of the same code.
    static func productRules(_ n: ConfigNode) throws(ConfigError) -> [String: ProductRule] {
        var out: [String: ProductRule] = [:]
        for (name, v) in try n.entries() {
            let code = name.uppercased()
            guard code.count <= 16, code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw v.error(.outOfRange, "a product code is 1 to 16 letters, digits or _")
            }
            guard out[code] == nil else { throw v.error(.outOfRange, "product \(code) is listed twice") }
            let builtIn = ValidateConfig.defaultProducts[code]
            var sender = builtIn?.sender
            var channel = builtIn?.channel ?? .sms
            var domestic = builtIn?.domestic ?? false
            try v.each(Keys.product) { key, f throws(ConfigError) in
                switch key {
                case "sender": sender = try f.choice(SenderRule.allCases)
                case "channel": channel = try f.choice(ProductChannel.allCases)
                case "domestic": domestic = try f.bool()
                default: break
                }
            }
            guard let sender else {
                let rules = SenderRule.allCases.map(\.rawValue).joined(separator: ", ")
                throw v.error(.wrongType, "needs a sender rule (sender: one of \(rules))")
            }
            out[code] = ProductRule(sender: sender, channel: channel, domestic: domestic)
        }
        guard !out.isEmpty else {
            throw n.error(.outOfRange, "lists no product; list at least one, or leave the key out for the built-in set")
        }
        return out
    }

    static func promoWindow(_ n: ConfigNode) throws(ConfigError) -> PromoWindow {
        var w = PromoWindow()
        var start: ConfigNode?, end: ConfigNode?
        try n.each(Keys.promoWindow) { key, v throws(ConfigError) in
            switch key {
            case "start", "end":
                guard let minute = ConfigText.minuteOfDay(try v.string(), allowMidnightEnd: key == "end") else {
                    throw v.wrongType("a local time \"HH:MM\"")
                }
                if key == "start" { w.startMinute = minute; start = v } else { w.endMinute = minute; end = v }
            case "timezone": w.timezone = try v.timeZone()
            case "action": w.action = try v.choice([PromoAction.defer, .reject])
            default: break
            }
        }
        // After the loop: either bound may be the default one.
        if w.startMinute >= w.endMinute, let at = end ?? start {
            func hhmm(_ m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
            throw at.error(.outOfRange, "the window \(hhmm(w.startMinute)) to \(hhmm(w.endMinute)) is empty; start must be before end")
        }
        return w
    }

    static func dedupe(_ n: ConfigNode) throws(ConfigError) -> DedupeConfig {
        var c = DedupeConfig()
        try n.each(Keys.dedupe) { _, v throws(ConfigError) in c.window = try v.duration(in: 0...Int.max) }
        return c
    }

    static func caps(_ n: ConfigNode) throws(ConfigError) -> CapsConfig {
        var c = CapsConfig()
        func cap(_ v: ConfigNode, _ platform: Int) throws(ConfigError) -> Int {
            let n = try v.int()
            if n > platform {
                throw v.error(.outOfRange, "\(n) is above the platform's \(platform); a cap may be lowered, never raised")
            }
            try v.check(n, in: 1...platform, show: String.init, nil)
            return n
        }
        try n.each(Keys.caps) { key, v throws(ConfigError) in
            switch key {
            case "quick": c.quick = try cap(v, CapsConfig.platformQuick)
            case "bulk": c.bulk = try cap(v, CapsConfig.platformBulk)
            case "channel": c.channel = try cap(v, CapsConfig.platformChannel)
            case "voice": c.voice = try cap(v, CapsConfig.platformVoice)
            case "over_cap": c.overCap = try v.choice([OverCapAction.split, .reject])
            case "kind": c.kind = try v.choice([CampaignKind.quick, .bulk])
            default: break
            }
        }
        return c
    }

    static func split(_ n: ConfigNode) throws(ConfigError) -> SplitConfig {
        var c = SplitConfig()
        var batchSize: ConfigNode?
        try n.each(Keys.split) { key, v throws(ConfigError) in
            switch key {
            case "provider": c.provider = try v.choice([Provider.mobtexting, .bics])
            case "batch_size": c.batchSize = try v.int(); batchSize = v
            case "interval": c.interval = try v.duration(in: 300...3600, "allowed 5m to 1h")
            case "start":
                let text = try v.string().trimmingCharacters(in: .whitespaces)
                if text.lowercased() == "now" {
                    c.start = .now
                } else if let at = ConfigText.epochSeconds(iso: text) {
                    c.start = .at(at)  // "more than 5 minutes ahead" is the pipeline's check, at run time
                } else {
                    throw v.error(.wrongType, "\(v.shown) is neither now nor an ISO 8601 time with Z or an offset "
                        + "such as 2026-03-01T09:30:00+05:30")
                }
            case "max_ahead": c.maxAhead = try v.duration(in: 1...(90 * 86_400), "the platform schedules less than 3 months ahead")
            default: break
            }
        }
        // After the loop: the limit depends on the provider, which may come later in the file.
        if let v = batchSize {
            let max = c.provider.maxBatchSize
            if c.batchSize > max {
                throw v.error(.outOfRange, "\(c.batchSize) is above the \(c.provider.rawValue) maximum of \(max)")
            }
            try v.check(c.batchSize, in: 1000...max, show: String.init, "allowed 1000 to \(max) on \(c.provider.rawValue)")
        }
        return c
    }

    static func send(_ n: ConfigNode) throws(ConfigError) -> SendConfig {
        var c = SendConfig()
        var rateNodes: [ConfigNode] = []
        try n.each(Keys.send) { key, v throws(ConfigError) in
            switch key {
            case "endpoint": c.endpoint = try endpoint(v)
            case "token_env": c.tokenEnv = try environmentName(v, "the token")
            case "auth": c.auth = try v.choice([AuthPlacement.header, .query])
            // Any positive rate: the provider raises an account's limits on request.
            case "requests_per_minute":
                c.requestsPerMinute = try v.int(in: 0...Self.maxRate, "a positive number of requests a minute")
                rateNodes.append(v)
            case "status_requests_per_minute":
                c.statusRequestsPerMinute = try v.int(in: 0...Self.maxRate, "a positive number of requests a minute")
                rateNodes.append(v)
            case "nodes_per_request": c.nodesPerRequest = try v.int(in: 1...5000)
            case "concurrency": c.concurrency = try v.int(in: 1...64)
            case "max_attempts": c.maxAttempts = try v.int(in: 1...20)
            case "timeout": c.timeout = try v.duration(in: 1...Int.max)
            default: break
            }
        }
        // 0 = no client-side limit: only against the built-in sandbox (benchmarks).
        if c.endpoint != "sandbox", let zero = rateNodes.first(where: { (try? $0.int()) == 0 }) {
            throw zero.error(.outOfRange, "0 (no limit) is allowed only with endpoint: sandbox; "
                + "give the rate the provider granted the account")
        }
        return c
    }

    /// A million requests a minute: far above any account, low enough to keep arithmetic sane.
    static let maxRate = 1_000_000

    /// `sandbox`, or an http(s) URL, kept with a trailing `/` so paths append to it.
    static func endpoint(_ v: ConfigNode) throws(ConfigError) -> String {
        let text = try v.string().trimmingCharacters(in: .whitespaces)
        if text == "sandbox" { return text }
        let lower = text.lowercased()
        // The value is not echoed: a url may carry credentials.
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
              let url = URL(string: text), let host = url.host, !host.isEmpty
        else {
            throw v.error(.outOfRange, "is neither sandbox nor an http:// or https:// url "
                + "such as https://portal.mobtexting.com/api/v2/")
        }
        guard url.query == nil, url.user == nil else {
            throw v.error(.outOfRange, "takes no query string or user in the url; "
                + "the token comes from the environment variable named by send.token_env")
        }
        return text.hasSuffix("/") ? text : text + "/"
    }

    static func watch(_ n: ConfigNode) throws(ConfigError) -> WatchConfig {
        var c = WatchConfig()
        try n.each(Keys.watch) { key, v throws(ConfigError) in
            switch key {
            case "root": c.root = try v.nonEmptyString()
            case "settle": c.settle = try v.duration(in: 0...Int.max)
            default: break
            }
        }
        return c
    }

    static func dlr(_ n: ConfigNode) throws(ConfigError) -> DLRConfig {
        var c = DLRConfig()
        try n.each(Keys.dlr) { key, v throws(ConfigError) in
            switch key {
            case "poll_every": c.pollEvery = try v.duration(in: 1...Int.max)
            case "stop_after": c.stopAfter = try v.duration(in: 60...Int.max)
            case "webhook_secret_env": c.webhookSecretEnv = try environmentName(v, "the bearer secret")
            case "listen": c.listen = try v.nonEmptyString()
            case "port": c.port = try v.int(in: 1...65535)
            default: break
            }
        }
        return c
    }

    /// The name of an environment variable; the value is never echoed (it may be the secret
    /// itself, written in the wrong place).
    static func environmentName(_ v: ConfigNode, _ what: String) throws(ConfigError) -> String {
        let name = try v.string()
        guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
              name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
        else {
            throw v.error(.outOfRange, "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*); "
                + "name the variable that holds \(what), never \(what) itself")
        }
        return name
    }

    static func state(_ n: ConfigNode) throws(ConfigError) -> StateConfig {
        var c = StateConfig()
        try n.each(Keys.state) { key, v throws(ConfigError) in
            switch key {
            case "path": c.path = try v.optionalString()
            case "url":
                c.url = try v.optionalString()
                if let url = c.url, !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) {
                    throw v.error(.outOfRange, "is not a PostgreSQL URL (postgres://user@host:port/database)")
                }
                if let url = c.url, URLComponents(string: url)?.password != nil {
                    throw v.error(.outOfRange, "holds a password; put it in the environment variable state.password_env names")
                }
            case "password_env": c.passwordEnv = try environmentName(v, "the database password")
            case "lease": c.lease = try v.duration(in: 3...3600)
            default: break
            }
        }
        return c
    }

    static func output(_ n: ConfigNode) throws(ConfigError) -> OutputConfig {
        var c = OutputConfig()
        try n.each(Keys.output) { key, v throws(ConfigError) in
            switch key {
            case "bom": c.bom = try v.bool()
            case "include_message": c.includeMessage = try v.bool()
            default: break
            }
        }
        return c
    }

    static func report(_ n: ConfigNode) throws(ConfigError) -> ReportConfig {
        var c = ReportConfig()
        try n.each(Keys.report) { key, v throws(ConfigError) in
            switch key {
            case "locale": c.locale = try v.choice(NumberLocale.allCases)
            default: break
            }
        }
        return c
    }

    // MARK: - YAML syntax

    /// A short message with the line, instead of libyaml's multi-line dump of the document.
    static func syntaxError(_ error: any Error, yaml: String, source: String) -> ConfigError {
        func err(_ problem: String, _ line: Int?) -> ConfigError {
            ConfigError(.syntax, line: line, message: "invalid yaml: \(problem)", source: source)
        }
        switch error as? YamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
             .composer(_, let problem, let mark, _):
            return err(problem, mark.line)
        case .duplicatedKeysInMapping(let keys, let context):
            return err("key \(keys.joined(separator: ", ")) appears more than once in one mapping", context.mark.line)
        case .reader(let problem, let offset, _, _):
            let line = offset.map { o in yaml.utf8.prefix(o).reduce(1) { $0 + ($1 == 10 ? 1 : 0) } }
            return err(problem, line)
        default:
            return err("cannot be parsed", nil)
        }
    }
}
