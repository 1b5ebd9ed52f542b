import Foundation
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

/// The error `yaml` fails with, or nil when it loads.
private func failure(_ yaml: String) -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(yaml: yaml, source: "pipeline.yaml")
        return nil
    } catch {
        return error
    }
}

private func config(_ yaml: String) throws -> PipelineConfig {
    try ConfigLoader.parse(yaml: yaml, source: "pipeline.yaml")
}

/// A failing case: the YAML, then the exact key path and line the error must name.
struct BadConfig: CustomTestStringConvertible, Sendable {
    let yaml: String, keyPath: String, line: Int
    init(_ yaml: String, _ keyPath: String, _ line: Int) { (self.yaml, self.keyPath, self.line) = (yaml, keyPath, line) }
    var testDescription: String { yaml.replacingOccurrences(of: "\n", with: " ⏎ ") }
}

private func expect(_ bad: BadConfig, is kind: ConfigError.Kind, sourceLocation: SourceLocation = #_sourceLocation) {
    let error = failure(bad.yaml)
    #expect(error?.kind == kind, sourceLocation: sourceLocation)
    #expect(error?.keyPath == bad.keyPath, sourceLocation: sourceLocation)
    #expect(error?.line == bad.line, "\(error?.description ?? "loaded")", sourceLocation: sourceLocation)
}

@Suite("pipeline.yaml (SPEC §3)")
struct ConfigTests {
    static let shipped = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("pipeline.yaml").path

    // MARK: - Defaults

    @Test("the shipped pipeline.yaml loads to exactly the built-in defaults")
    func shippedIsDefaults() throws {
        #expect(try ConfigLoader.load(path: Self.shipped) == PipelineConfig())
    }

    @Test("the shipped pipeline.yaml lists every key of every section")
    func shippedListsEveryKey() throws {
        let text = try String(contentsOfFile: Self.shipped, encoding: .utf8)
        typealias K = ConfigLoader.Keys
        let sections: [(String, [String])] = [
            ("input", K.input), ("validate", K.validate), ("dedupe", K.dedupe), ("caps", K.caps),
            ("split", K.split), ("send", K.send), ("watch", K.watch), ("state", K.state), ("output", K.output), ("report", K.report),
            ("dlr", K.dlr),
        ]
        #expect(sections.map(\.0) == K.sections)
        for (section, keys) in sections {
            #expect(text.contains("\n\(section):"), "\(section)")
            for key in keys { #expect(text.contains("\n  \(key):"), "\(section).\(key)") }
        }
        for key in K.promoWindow { #expect(text.contains("\n    \(key):"), "validate.promo_window.\(key)") }
        for role in ColumnRole.allCases { #expect(text.contains("\n    \(role.rawValue):"), "input.columns.\(role)") }
    }

    @Test("an empty file, a null document and empty sections mean the defaults",
          arguments: ["", "\n# only a comment\n", "null", "~", "---\n", "split:\nsend: ~\n", "input: {}"])
    func emptyIsDefaults(yaml: String) throws {
        #expect(try config(yaml) == PipelineConfig())
    }

    @Test("an explicit null for optout_list, default_sender and state.path means none")
    func optionalNulls() throws {
        let c = try config("validate:\n  optout_list: lists/optout.csv\n  default_sender: null\nstate:\n  path: ~\n")
        #expect(c.validate.optoutList == "lists/optout.csv")
        #expect(c.validate.defaultSender == nil)
        #expect(c.state.path == nil)
        #expect(c.statePath == "spool/state.sqlite" || c.statePath == "./spool/state.sqlite")
    }

    // MARK: - Files

    @Test("an explicit config path that does not exist is unreadable, with no line")
    func missingFile() {
        let path = NSTemporaryDirectory() + "smsbatch-no-such-\(UUID().uuidString).yaml"
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path) }
        do {
            _ = try ConfigLoader.load(path: path)
        } catch {
            #expect(error.kind == .unreadable)
            #expect(error.line == nil)
            #expect(error.description.hasPrefix("\(path): no such file"))
        }
    }

    @Test("a directory given as the config path is unreadable")
    func directoryIsUnreadable() {
        do {
            _ = try ConfigLoader.load(path: NSTemporaryDirectory())
            Issue.record("loaded a directory")
        } catch {
            #expect(error.kind == .unreadable)
        }
    }

    @Test("a file given by path is read, and errors name that path")
    func loadsGivenFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smsbatch-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.yaml").path
        try "caps:\n  kind: quick\n".write(toFile: good, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.load(path: good).caps.kind == .quick)
        let bad = dir.appendingPathComponent("bad.yaml").path
        try "split:\n  interval: 2h\n".write(toFile: bad, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigLoader.load(path: bad)
            Issue.record("loaded")
        } catch {
            #expect(error.description == "\(bad):2: split.interval: 2h is above the maximum of 1h (allowed 5m to 1h)")
        }
    }

    // MARK: - Refused keys

    @Test("an unknown key at any level is refused, naming its key path and line", arguments: [
        BadConfig("inputs:\n  max_file_bytes: 1", "inputs", 1),
        BadConfig("split:\n  batch_size: 10000\n  batchsize: 5000", "split.batchsize", 3),
        BadConfig("validate:\n  promo_window:\n    begin: \"09:00\"", "validate.promo_window.begin", 3),
        BadConfig("validate:\n  products:\n    T: {sender: dlt_header, route: x}", "validate.products.T.route", 3),
        BadConfig("input:\n  columns:\n    phone: [tel]", "input.columns.phone", 3),
        BadConfig("state:\n  path: x\n  file: y", "state.file", 3),
    ])
    func unknownKey(bad: BadConfig) {
        expect(bad, is: .unknownKey)
    }

    @Test("a token written in send is refused and pointed at send.token_env, its value never shown",
          arguments: ["token", "access_token"])
    func tokenRefused(key: String) {
        let error = failure("send:\n  endpoint: sandbox\n  \(key): s3cr3t-value\n")
        #expect(error?.kind == .unknownKey)
        #expect(error?.keyPath == "send.\(key)")
        #expect(error?.line == 3)
        #expect(error?.message.contains("send.token_env") == true)
        #expect(error?.description.contains("s3cr3t") == false)
    }

    @Test("a refused endpoint or token_env is not echoed: it may hold a secret", arguments: [
        "send:\n  token_env: abc-s3cr3t-123",
        "send:\n  endpoint: https://portal.mobtexting.com/api/v2/?access_token=s3cr3t",
        "send:\n  endpoint: https://user:s3cr3t@portal.mobtexting.com/api/v2/",
        "send:\n  endpoint: s3cr3t",
    ])
    func secretsNotEchoed(yaml: String) {
        let error = failure(yaml)
        #expect(error?.kind == .outOfRange)
        #expect(error?.description.contains("s3cr3t") == false)
    }

    @Test("the unknown-key message lists the keys the section has")
    func unknownKeyMessage() {
        #expect(failure("watch:\n  folder: x")?.description
            == "pipeline.yaml:2: watch.folder: unknown key; watch has: root, settle")
    }

    // MARK: - Wrong types

    @Test("a value of the wrong YAML type is refused as wrongType", arguments: [
        BadConfig("- input\n- split", "", 1),
        BadConfig("caps: 5", "caps", 1),
        BadConfig("split:\n  batch_size: ten", "split.batch_size", 2),
        BadConfig("split:\n  batch_size: 1.5", "split.batch_size", 2),
        BadConfig("split:\n  batch_size: [1000]", "split.batch_size", 2),
        BadConfig("split:\n  batch_size: \"10000\"", "split.batch_size", 2),
        BadConfig("split:\n  batch_size:", "split.batch_size", 2),
        BadConfig("split:\n  start: tomorrow", "split.start", 2),
        BadConfig("split:\n  start: 2026-03-01T10:00:00", "split.start", 2),
        BadConfig("validate:\n  max_invalid_ratio: lots", "validate.max_invalid_ratio", 2),
        BadConfig("validate:\n  promo_window:\n    start: 9am", "validate.promo_window.start", 3),
        BadConfig("validate:\n  products:\n    T: {domestic: maybe}", "validate.products.T.domestic", 3),
        BadConfig("validate:\n  products:\n    XYZ: {channel: sms}", "validate.products.XYZ", 3),
        BadConfig("validate:\n  timezone: {name: UTC}", "validate.timezone", 2),
        BadConfig("dedupe:\n  window: 5 minutes", "dedupe.window", 2),
        BadConfig("input:\n  max_file_bytes: 200 parsecs", "input.max_file_bytes", 2),
        BadConfig("input:\n  max_file_bytes: true", "input.max_file_bytes", 2),
        BadConfig("input:\n  columns:\n    recipient:\n      - tel\n      - {a: b}", "input.columns.recipient[1]", 5),
        BadConfig("watch:\n  root: [a, b]", "watch.root", 2),
    ])
    func wrongType(bad: BadConfig) {
        expect(bad, is: .wrongType)
    }

    @Test("a wrong-type message says what was expected and what was found, in our words")
    func wrongTypeMessage() {
        #expect(failure("split:\n  batch_size: ten")?.description
            == "pipeline.yaml:2: split.batch_size: expected an integer, got \"ten\"")
    }

    // MARK: - Out of range

    @Test("batch_size is checked against the provider in the same file, whatever the key order", arguments: [
        BadConfig("split:\n  provider: bics\n  batch_size: 200000", "split.batch_size", 3),
        BadConfig("split:\n  batch_size: 200000\n  provider: bics", "split.batch_size", 2),
    ])
    func batchSizeAgainstProvider(bad: BadConfig) {
        expect(bad, is: .outOfRange)
        #expect(failure(bad.yaml)?.message == "200000 is above the bics maximum of 100000")
    }

    @Test("a cap may be lowered, never raised above the platform's number")
    func capRaised() throws {
        let error = failure("caps:\n  quick: 50001")
        #expect(error?.kind == .outOfRange)
        #expect(error?.keyPath == "caps.quick")
        #expect(error?.line == 2)
        #expect(error?.message.contains("never raised") == true)
        #expect(try config("caps:\n  quick: 1000\n  bulk: 20000").caps.bulk == 20000)
    }

    @Test("a value outside its allowed range or set of choices is refused as outOfRange", arguments: [
        BadConfig("split:\n  batch_size: 999", "split.batch_size", 2),
        BadConfig("split:\n  batch_size: 500001", "split.batch_size", 2),
        BadConfig("split:\n  interval: 4m", "split.interval", 2),
        BadConfig("split:\n  interval: 2h", "split.interval", 2),
        BadConfig("split:\n  max_ahead: 91d", "split.max_ahead", 2),
        BadConfig("split:\n  max_ahead: 0", "split.max_ahead", 2),
        BadConfig("split:\n  provider: twilio", "split.provider", 2),
        BadConfig("caps:\n  bulk: 0", "caps.bulk", 2),
        BadConfig("caps:\n  channel: 200001", "caps.channel", 2),
        BadConfig("caps:\n  voice: 60000", "caps.voice", 2),
        BadConfig("caps:\n  over_cap: truncate", "caps.over_cap", 2),
        BadConfig("caps:\n  kind: medium", "caps.kind", 2),
        BadConfig("validate:\n  max_invalid_ratio: 1.5", "validate.max_invalid_ratio", 2),
        BadConfig("validate:\n  max_invalid_ratio: -0.1", "validate.max_invalid_ratio", 2),
        BadConfig("validate:\n  max_segments: 0", "validate.max_segments", 2),
        BadConfig("validate:\n  max_segments: 256", "validate.max_segments", 2),
        BadConfig("validate:\n  timezone: Mars/Olympus_Mons", "validate.timezone", 2),
        BadConfig("validate:\n  promo_window:\n    timezone: Nowhere/City", "validate.promo_window.timezone", 3),
        BadConfig("validate:\n  home_country: XX", "validate.home_country", 2),
        BadConfig("validate:\n  promo_window:\n    start: \"22:00\"", "validate.promo_window.start", 3),
        BadConfig("validate:\n  promo_window:\n    start: \"10:00\"\n    end: \"09:00\"", "validate.promo_window.end", 4),
        BadConfig("validate:\n  promo_window:\n    action: drop", "validate.promo_window.action", 3),
        BadConfig("validate:\n  default_product: X", "validate.default_product", 2),
        BadConfig("validate:\n  products:\n    G: {}", "validate.default_product", 2),
        BadConfig("validate:\n  default_product: G\n  products:\n    P: {}", "validate.default_product", 2),
        BadConfig("validate:\n  products: {}", "validate.products", 2),
        BadConfig("validate:\n  optout_list: \"\"", "validate.optout_list", 2),
        BadConfig("dedupe:\n  window: -5", "dedupe.window", 2),
        BadConfig("input:\n  max_file_bytes: 0", "input.max_file_bytes", 2),
        BadConfig("input:\n  max_list_bytes: -1", "input.max_list_bytes", 2),
        BadConfig("input:\n  delimiter: \":\"", "input.delimiter", 2),
        BadConfig("send:\n  endpoint: ftp://example.com/", "send.endpoint", 2),
        BadConfig("send:\n  endpoint: portal.mobtexting.com", "send.endpoint", 2),
        BadConfig("send:\n  token_env: 1TOKEN", "send.token_env", 2),
        BadConfig("send:\n  token_env: my-token", "send.token_env", 2),
        BadConfig("send:\n  auth: cookie", "send.auth", 2),
        BadConfig("send:\n  requests_per_minute: -1", "send.requests_per_minute", 2),
        BadConfig("send:\n  endpoint: https://x.example/api/v2/\n  requests_per_minute: 0", "send.requests_per_minute", 3),
        BadConfig("send:\n  endpoint: https://x.example/api/v2/\n  status_requests_per_minute: 0", "send.status_requests_per_minute", 3),
        BadConfig("send:\n  nodes_per_request: 5001", "send.nodes_per_request", 2),
        BadConfig("send:\n  concurrency: 0", "send.concurrency", 2),
        BadConfig("send:\n  concurrency: 65", "send.concurrency", 2),
        BadConfig("send:\n  max_attempts: 21", "send.max_attempts", 2),
        BadConfig("send:\n  timeout: 0", "send.timeout", 2),
        BadConfig("watch:\n  settle: -1", "watch.settle", 2),
    ])
    func outOfRange(bad: BadConfig) {
        expect(bad, is: .outOfRange)
    }

    // MARK: - Syntax

    @Test("broken YAML is a syntax error with a short message and its line")
    func syntax() {
        let error = failure("split:\n  interval: 5m\n  batch_size: [1000, 2000\n")
        #expect(error?.kind == .syntax)
        #expect(error?.line != nil)
        #expect(error?.description.hasPrefix("pipeline.yaml:") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test("a key given twice is a syntax error naming its line")
    func duplicateKey() {
        let error = failure("split:\n  interval: 5m\n  interval: 10m\n")
        #expect(error?.kind == .syntax)
        #expect(error?.line == 2)
        #expect(error?.message.contains("interval") == true)
    }

    // MARK: - Values

    @Test("durations: a bare number is seconds; s, m, h, d units", arguments: [
        ("0", 0), ("45", 45), ("30s", 30), ("5m", 300), ("60m", 3600), ("1h", 3600), ("1h30m", 5400),
        ("90d", 7_776_000), ("2D", 172_800),
    ] as [(String, Int)])
    func durations(text: String, seconds: Int) throws {
        #expect(ConfigText.seconds(text) == seconds)
        #expect(try config("dedupe:\n  window: \(text)").dedupe.window == seconds)
    }

    @Test("text that is not a duration is refused",
          arguments: ["", "m", "5x", "-5m", "1.5h", "5 m", "h5", "99999999999999999999d"])
    func badDurations(text: String) {
        #expect(ConfigText.seconds(text) == nil)
    }

    @Test("sizes: plain bytes or binary K/M/G suffixes, as SPEC §3 calls 209715200 200 MB", arguments: [
        ("209715200", 209_715_200), ("200MB", 209_715_200), ("200 MiB", 209_715_200), ("2GiB", 2_147_483_648),
        ("2g", 2_147_483_648), ("1k", 1024), ("512B", 512),
    ] as [(String, Int64)])
    func sizes(text: String, bytes: Int64) throws {
        #expect(ConfigText.bytes(text) == bytes)
        #expect(try config("input:\n  max_expanded_bytes: \(text)").input.maxExpandedBytes == bytes)
    }

    @Test("split.start is now or an ISO 8601 time with Z or an offset, kept as epoch seconds", arguments: [
        ("now", SplitStart.now), ("NOW", .now),
        ("2026-03-01T10:00:00Z", .at(1_772_359_200)), ("\"2026-03-01T10:00:00Z\"", .at(1_772_359_200)),
        ("2026-03-01T10:00:00+05:30", .at(1_772_339_400)), ("2026-03-01 10:00+0530", .at(1_772_339_400)),
        ("2026-03-01T10:00:00.250Z", .at(1_772_359_200)), ("2024-02-29T23:59:59Z", .at(1_709_251_199)),
    ] as [(String, SplitStart)])
    func start(text: String, start: SplitStart) throws {
        #expect(try config("split:\n  start: \(text)").split.start == start)
    }

    @Test("impossible dates are not times", arguments: ["2026-02-29T10:00:00Z", "2026-13-01T10:00:00Z", "2026-03-01T24:00:00Z"])
    func badStart(text: String) {
        #expect(ConfigText.epochSeconds(iso: text) == nil)
    }

    @Test("delimiter: auto, comma, semicolon, tab (\"\\t\" or tab) and pipe", arguments: [
        ("auto", Delimiter.auto), ("\",\"", .fixed(44)), ("\";\"", .fixed(59)), ("\"\\t\"", .fixed(9)),
        ("tab", .fixed(9)), ("\"|\"", .fixed(124)),
    ] as [(String, Delimiter)])
    func delimiter(text: String, delimiter: Delimiter) throws {
        #expect(try config("input:\n  delimiter: \(text)").input.delimiter == delimiter)
    }

    @Test("a configured value replaces its default, with the forms an operator writes")
    func readsValues() throws {
        let c = try config("""
            validate:
              home_country: NO          # a YAML 1.1 bool, still Norway
              default_sender: 123456    # an int, still a sender
              default_product: p
              promo_window:
                start: 8:30
                end: 21:00              # base-60 int in YAML 1.1, still a time
                action: reject
            split: {provider: BICS, batch_size: 100_000, interval: 1h, max_ahead: 30d}
            send:
              endpoint: https://portal.mobtexting.com/api/v2
              auth: query
              timeout: 90
            watch: {root: /var/spool/sms, settle: 0}
            state: {path: /var/lib/smsbatch/state.sqlite}
            """)
        #expect(c.validate.homeCountry == "NO")
        #expect(c.validate.defaultSender == "123456")
        #expect(c.validate.defaultProduct == "P")
        #expect(c.validate.promoWindow.startMinute == 8 * 60 + 30)
        #expect(c.validate.promoWindow.endMinute == 21 * 60)
        #expect(c.validate.promoWindow.action == .reject)
        #expect(c.split.provider == .bics && c.split.batchSize == 100_000)
        #expect(c.split.interval == 3600 && c.split.maxAhead == 30 * 86_400)
        #expect(c.send.endpoint == "https://portal.mobtexting.com/api/v2/")
        #expect(c.send.auth == .query && c.send.timeout == 90)
        #expect(c.watch.settle == 0)
        #expect(c.statePath == "/var/lib/smsbatch/state.sqlite")
    }

    @Test("validate.products replaces the built-in set; a listed code's fields default from the built-in one")
    func productsReplace() throws {
        let c = try config("""
            validate:
              products:
                t: {}
                P: {domestic: false}
                OTP: {sender: dlt_header, domestic: true}
            """)
        #expect(c.validate.products == [
            "T": ValidateConfig.defaultProducts["T"]!,
            "P": ProductRule(sender: .numeric6, channel: .sms, domestic: false),
            "OTP": ProductRule(sender: .dltHeader, channel: .sms, domestic: true),
        ])
    }

    @Test("input.columns adds aliases to the built-in ones; a built-in alias listed again changes nothing")
    func columnAliases() throws {
        let c = try config("input:\n  columns:\n    recipient: [Mobile_No, Handy]\n    ref: order id\n")
        #expect(c.input.columns == [.recipient: ["Handy"], .ref: ["order id"]])
        #expect(c.input.aliases(for: .recipient).last == "Handy")
    }
}
