import Foundation
import Yams

/// A YAML node together with the key path and line that name it, so that every value read
/// from pipeline.yaml can fail with an error the user can find in the file.
struct ConfigNode {
    let node: Node
    /// Dotted path, e.g. `split.batch_size`; empty for the document itself.
    let path: String
    /// Line of the key (more useful than the value's: a block value starts on the next line).
    let line: Int?
    let source: String

    func error(_ kind: ConfigError.Kind, _ message: String) -> ConfigError {
        ConfigError(kind, keyPath: path, line: line, message: message, source: source)
    }

    /// The resolved YAML tag (`Tag.name` is internal to Yams).
    var tag: Tag.Name { Tag.Name(rawValue: node.tag.rawValue) }

    var isNull: Bool {
        if case .scalar = node { return tag == .null }
        return false
    }

    /// The value as the user wrote it, for messages (shortened, never for secrets).
    var shown: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            if isNull { return "null" }
            let text = s.string.count > 40 ? s.string.prefix(37) + "..." : s.string
            return tag == .str ? "\"\(text)\"" : String(text)
        }
    }

    func wrongType(_ expected: String) -> ConfigError {
        error(.wrongType, "expected \(expected), got \(shown)")
    }

    // MARK: - Mappings

    /// The pairs of a mapping with string keys; null (a section left empty) is no pairs.
    func entries() throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        if isNull { return [] }
        guard case .mapping(let mapping) = node else { throw wrongType("a mapping") }
        var out: [(key: String, value: ConfigNode)] = []
        for (k, v) in mapping {
            let line = k.mark?.line ?? v.mark?.line
            guard case .scalar(let key) = k, !key.string.isEmpty else {
                throw ConfigError(.unknownKey, keyPath: path, line: line,
                                  message: "keys must be plain names", source: source)
            }
            let child = ConfigNode(node: v, path: path.isEmpty ? key.string : "\(path).\(key.string)",
                                   line: line, source: source)
            out.append((key.string, child))
        }
        return out
    }

    /// Calls `body` for each key of a mapping, refusing any key not in `known` first.
    func each(_ known: [String], _ body: (String, ConfigNode) throws(ConfigError) -> Void) throws(ConfigError) {
        for (key, value) in try entries() {
            guard known.contains(key) else {
                if ["token", "access_token"].contains(key.lowercased()) {
                    throw value.error(.unknownKey, "a token is never written in pipeline.yaml; remove this key "
                        + "and put the token in the environment variable named by send.token_env")
                }
                let within = path.isEmpty ? "the top level" : path
                throw value.error(.unknownKey, "unknown key; \(within) has: \(known.joined(separator: ", "))")
            }
            try body(key, value)
        }
    }

    // MARK: - Scalars

    /// Text as written. Any scalar is accepted, so `home_country: NO`, `default_sender: 123456`
    /// and `end: 21:00` (a YAML 1.1 bool, int and base-60 int) keep their text.
    func string() throws(ConfigError) -> String {
        guard case .scalar(let s) = node, !isNull else { throw wrongType("text") }
        return s.string
    }

    /// Text, or nil for an explicit null; empty text is refused (write null for none).
    func optionalString() throws(ConfigError) -> String? {
        if isNull { return nil }
        let text = try string()
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw error(.outOfRange, "is empty; write null (or leave the key out) for none")
        }
        return text
    }

    func nonEmptyString() throws(ConfigError) -> String {
        guard let text = try optionalString() else { throw wrongType("text") }
        return text
    }

    func int() throws(ConfigError) -> Int {
        guard case .scalar(let s) = node, tag == .int else { throw wrongType("an integer") }
        guard let n = Int.construct(from: s) else { throw error(.outOfRange, "\(s.string) is too large") }
        return n
    }

    func int(in range: ClosedRange<Int>, _ why: String? = nil) throws(ConfigError) -> Int {
        let n = try int()
        try check(n, in: range, show: String.init, why)
        return n
    }

    func double(in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard case .scalar(let s) = node, [.int, .float].contains(tag),
              let x = Double(s.string.replacingOccurrences(of: "_", with: "")) ?? Double.construct(from: s)
        else { throw wrongType("a number") }
        guard range.contains(x) else {
            throw error(.outOfRange, "\(s.string) is outside \(range.lowerBound.shortText) to \(range.upperBound.shortText)")
        }
        return x
    }

    func bool() throws(ConfigError) -> Bool {
        guard case .scalar(let s) = node, tag == .bool, let b = Bool.construct(from: s) else {
            throw wrongType("true or false")
        }
        return b
    }

    /// One of `allowed`, by raw value, case-insensitively.
    func choice<T: RawRepresentable>(_ allowed: [T]) throws(ConfigError) -> T where T.RawValue == String {
        let text = try string().trimmingCharacters(in: .whitespaces).lowercased()
        guard let value = allowed.first(where: { $0.rawValue.lowercased() == text }) else {
            let names = allowed.map(\.rawValue).joined(separator: ", ")
            throw error(.outOfRange, "\(shown) is not one of: \(names)")
        }
        return value
    }

    /// A duration in whole seconds (see `ConfigText.seconds`).
    func duration(in range: ClosedRange<Int>, _ why: String? = nil) throws(ConfigError) -> Int {
        let seconds: Int
        if case .scalar(let s) = node, tag == .int {
            guard let n = Int.construct(from: s), n >= 0 else {
                throw error(.outOfRange, "\(s.string) is not a duration of zero or more")
            }
            seconds = n
        } else {
            guard case .scalar(let s) = node, !isNull, let n = ConfigText.seconds(s.string) else {
                throw wrongType("a duration such as 30s, 5m, 1h or 90d")
            }
            seconds = n
        }
        try check(seconds, in: range, show: ConfigText.duration, why)
        return seconds
    }

    /// A positive byte count (see `ConfigText.bytes`).
    func bytes() throws(ConfigError) -> Int64 {
        guard case .scalar(let s) = node, !isNull, [.int, .str].contains(tag) else {
            throw wrongType("a size in bytes such as 209715200 or 200MB")
        }
        guard let n = ConfigText.bytes(s.string) else {
            if s.string.hasPrefix("-") { throw error(.outOfRange, "\(s.string) must be a positive size") }
            throw wrongType("a size in bytes such as 209715200 or 200MB")
        }
        guard n > 0 else { throw error(.outOfRange, "\(s.string) must be a positive size") }
        return n
    }

    func timeZone() throws(ConfigError) -> String {
        let id = try string()
        guard TimeZone(identifier: id) != nil else {
            throw error(.outOfRange, "\(shown) is not a known time zone; use an IANA name such as Asia/Kolkata or UTC")
        }
        return id
    }

    /// The range message: `4m is below the minimum of 5m (…)`.
    func check(_ value: Int, in range: ClosedRange<Int>, show: (Int) -> String, _ why: String?) throws(ConfigError) {
        let note = why.map { " (\($0))" } ?? ""
        if value < range.lowerBound {
            throw error(.outOfRange, "\(show(value)) is below the minimum of \(show(range.lowerBound))\(note)")
        }
        if value > range.upperBound {
            throw error(.outOfRange, "\(show(value)) is above the maximum of \(show(range.upperBound))\(note)")
        }
    }
}

extension Double {
    /// `0` and `1` rather than `0.0` and `1.0` in messages.
    fileprivate var shortText: String { String(format: "%g", self) }
}
