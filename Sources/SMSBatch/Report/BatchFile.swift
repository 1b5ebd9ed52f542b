/// Why a row was not submitted: a batch file's `error_code`.
enum RowErrorCode: Sendable, Equatable {
    /// Not sent: the job sends nothing now (credentials, endpoint) or the provider refused
    /// the credentials earlier in the job.
    case notSent
    /// Went out, and the provider could not confirm whether it accepted the row: looked up
    /// before anything is sent again (SPEC §10).
    case inDoubt
    /// A signal stopped the job before the row went out.
    case interrupted
    /// Not sent: the ledger could not record the request first.
    case ledger
    /// The provider accepted the request but named no result for the row.
    case noResult
    /// No HTTP answer after every attempt.
    case noAnswer
    /// The provider's own code, or `HTTP_<status>` when it gave none.
    case provider(String)

    var text: String {
        switch self {
        case .notSent: "NOT_SENT"
        case .inDoubt: "IN_DOUBT"
        case .interrupted: "INTERRUPTED"
        case .ledger: "LEDGER"
        case .noResult: "NO_RESULT"
        case .noAnswer: "NO_ANSWER"
        case .provider(let code): code
        }
    }

    /// The code as the ledger stored it; empty is none.
    init?(text: String) {
        switch text {
        case "": return nil
        case "NOT_SENT": self = .notSent
        case "IN_DOUBT": self = .inDoubt
        case "INTERRUPTED": self = .interrupted
        case "LEDGER": self = .ledger
        case "NO_RESULT": self = .noResult
        case "NO_ANSWER": self = .noAnswer
        default: self = .provider(text)
        }
    }

    /// Rows written failed with no request behind them: the ledger has no answer for them.
    var isUnrecorded: Bool { self == .notSent || self == .ledger }
}

/// One row of `batches/batch-NNNN.csv` (SPEC §7): the dry run's and the send stage's rows
/// go through here, so the two can never disagree on a column.
enum BatchRow {
    /// Writes one row. `result`: the provider's outcome, nil for a dry run. `scheduled`: the
    /// ISO time's bytes, empty for "at once". `message`: written when `output.include_message`.
    static func write(_ file: inout OutputFile, row: Int, recipient: PhoneNumber, sender: UnsafeBufferPointer<UInt8>,
                      product: UnsafeBufferPointer<UInt8>, result: RowResult?, segments: Int, encoding: SMSEncoding?,
                      scheduled: UnsafeBufferPointer<UInt8>, message: UnsafeBufferPointer<UInt8>?) {
        file.number(row)
        file.comma()
        file.phone(recipient)
        file.comma()
        file.field(sender)
        file.comma()
        file.field(product)
        if let result {
            file.plain(result.submitted ? ",submitted," : ",failed,")
            file.field(result.messageId)
            file.comma()
            if let s = result.httpStatus { file.number(s) }
            file.comma()
            if let code = result.errorCode { file.field(code.text) }
            file.comma()
            file.field(result.errorMessage)
            file.comma()
            file.number(result.attempts)
            file.comma()
        } else {
            file.plain(",dry_run,,,,,0,")
        }
        if let encoding {
            file.number(segments)
            file.plain(encoding == .gsm7 ? ",gsm7," : ",ucs2,")
        } else {
            file.plain(",,")
        }
        file.plain(scheduled)
        // Delivery columns (SPEC §11): a submitted row awaits its report until one arrives.
        file.plain(result?.submitted == true ? ",AWAITING-DLR,,pending" : ",,,")
        if let message {
            file.comma()
            file.field(message)
        }
    }
}
