// gen-recipients: writes a deterministic test recipient CSV (see RecipientGenerator).
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import RecipientGenerator

let usage = """
    usage: gen-recipients --rows N --seed S [--invalid F] [--dups F] [--mix-problems]
                          [--delimiter ','|';'|'|'|tab] [--crlf] [--bom] [--now UNIX_SECONDS] OUTPUT
    OUTPUT '-' writes to stdout; the row accounting goes to stderr.

    """

/// Writes to a file descriptor (C's `stderr` is not concurrency-safe under Swift 6).
func put(_ text: String, _ fd: Int32 = STDERR_FILENO) {
    var text = text
    text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    put("gen-recipients: error: \(message)\n\(usage)")
    exit(64)
}

var options = GeneratorOptions(rows: -1, seed: 0)
var seedGiven = false
var output: String?
var args = CommandLine.arguments.dropFirst()

@MainActor func value(_ flag: String) -> String {
    guard let v = args.popFirst() else { fail("\(flag) needs a value") }
    return v
}

@MainActor func share(_ flag: String) -> Double {
    guard let v = Double(value(flag)), v >= 0, v <= 1 else { fail("\(flag) must be a number from 0 to 1") }
    return v
}

while let arg = args.popFirst() {
    switch arg {
    case "--rows":
        guard let n = Int(value(arg)), n >= 0 else { fail("--rows must be a whole number ≥ 0") }
        options.rows = n
    case "--seed":
        guard let s = UInt64(value(arg)) else { fail("--seed must be a whole number ≥ 0") }
        options.seed = s
        seedGiven = true
    case "--invalid": options.invalidShare = share(arg)
    case "--dups": options.duplicateShare = share(arg)
    case "--mix-problems": options.mixProblems = true
    case "--crlf": options.crlf = true
    case "--bom": options.bom = true
    case "--now":
        guard let t = Int64(value(arg)) else { fail("--now must be Unix seconds") }
        options.now = t
    case "--delimiter":
        switch value(arg) {
        case ",": options.delimiter = UInt8(ascii: ",")
        case ";": options.delimiter = UInt8(ascii: ";")
        case "|": options.delimiter = UInt8(ascii: "|")
        case "\t", "\\t", "tab": options.delimiter = 0x09
        default: fail("--delimiter must be ',' ';' '|' or tab")
        }
    case "-h", "--help":
        put(usage, STDOUT_FILENO)
        exit(0)
    default:
        if arg.hasPrefix("-") && arg != "-" { fail("unknown option \(arg)") }
        if output != nil { fail("only one OUTPUT may be given") }
        output = arg
    }
}
guard options.rows >= 0 else { fail("--rows is required") }
guard seedGiven else { fail("--seed is required") }
guard let output else { fail("OUTPUT is required ('-' for stdout)") }

let fd = output == "-" ? STDOUT_FILENO : open(output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
if fd < 0 {
    put("gen-recipients: error: cannot open \(output): \(String(cString: strerror(errno)))\n")
    exit(73)
}
do {
    let stats = try generateRecipients(options, to: fd)
    if fd != STDOUT_FILENO, close(fd) != 0 { throw GeneratorError(errno: errno) }
    let reasons = stats.invalidByReason.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    put(
        "gen-recipients: \(output): \(stats.records) rows, \(stats.bytes) bytes; valid \(stats.valid), "
            + "duplicates \(stats.duplicates), invalid \(stats.invalid)"
            + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: ", ")))") + "\n")
} catch let e as GeneratorError {
    put("gen-recipients: error: writing \(output): \(String(cString: strerror(e.errno)))\n")
    exit(74)
}
