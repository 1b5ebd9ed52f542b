/// Why a row was rejected (SPEC §5). The declaration order is the table's order: a row that
/// breaks several rules is reported with the first reason in this order.
public enum ReasonCode: UInt8, CaseIterable, Sendable {
    case wrongFieldCount
    case invalidUTF8
    case missingRecipient
    case invalidRecipient
    case invalidProduct
    case foreignRecipient
    case missingSender
    case invalidSender
    case missingMessage
    case messageTooLong
    case invalidSchedule
    case invalidDLTId
    case outsidePromoWindow
    case optedOut

    /// The code as written in rejects.csv and summary.json.
    public var code: String {
        switch self {
        case .wrongFieldCount: "wrong_field_count"
        case .invalidUTF8: "invalid_utf8"
        case .missingRecipient: "missing_recipient"
        case .invalidRecipient: "invalid_recipient"
        case .invalidProduct: "invalid_product"
        case .foreignRecipient: "foreign_recipient"
        case .missingSender: "missing_sender"
        case .invalidSender: "invalid_sender"
        case .missingMessage: "missing_message"
        case .messageTooLong: "message_too_long"
        case .invalidSchedule: "invalid_schedule"
        case .invalidDLTId: "invalid_dlt_id"
        case .outsidePromoWindow: "outside_promo_window"
        case .optedOut: "opted_out"
        }
    }
}

/// Why a whole file was rejected (SPEC §5, file-level rejection).
public enum FileRejectReason: String, Sendable, Equatable {
    case fileTooLarge = "file_too_large"
    case expandedTooLarge = "expanded_too_large"
    case unreadable = "unreadable"
    case missingColumn = "missing_column"
    case noRows = "no_rows"
    case tooManyInvalid = "too_many_invalid"
    case overCap = "over_cap"
}
