/// A pipeline.yaml that cannot be used (SPEC §3). The CLI maps every one to exit 78.
///
/// Equatable so a test can assert the exact kind, key path and line.
public struct ConfigError: Diagnosable, Equatable {
    public enum Kind: Equatable, Sendable {
        /// The file named by `-c/--config` is missing, a directory, unreadable or not UTF-8.
        case unreadable
        /// Not well-formed YAML (bad indentation, unclosed quote, duplicate key…).
        case syntax
        /// A key that pipeline.yaml does not have, or a secret (`send.token`) that never belongs there.
        case unknownKey
        /// A value of the wrong shape: text where a number goes, a list where a mapping goes,
        /// a duration or size that does not parse, a required field missing.
        case wrongType
        /// A well-formed value outside what is allowed: a range, a choice, a platform limit,
        /// an unknown time zone or country.
        case outOfRange
    }

    public var kind: Kind
    /// Dotted YAML path such as `split.batch_size`; empty when the error is about the whole file.
    public var keyPath: String
    /// 1-based line in the file, when known.
    public var line: Int?
    /// Lowercase, says what is wrong and, where there is one, the fix.
    public var message: String
    /// The file as the user named it (`pipeline.yaml`, `conf/prod.yaml`).
    public var source: String

    public init(_ kind: Kind, keyPath: String = "", line: Int? = nil, message: String, source: String = "pipeline.yaml") {
        self.kind = kind
        self.keyPath = keyPath
        self.line = line
        self.message = message
        self.source = source
    }

    /// `pipeline.yaml:12`
    public var subject: String { line.map { "\(source):\($0)" } ?? source }
    /// `split.batch_size: 200000 is above the bics maximum of 100000`
    public var problem: String { keyPath.isEmpty ? message : "\(keyPath): \(message)" }
    public var exitStatus: ExitStatus { .config }
}
