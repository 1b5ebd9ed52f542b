import Foundation

/// A row that passed every rule of SPEC §5, as the later stages need it. Byte ranges point
/// into the record block it came from.
struct ValidRow {
    var recipient: PhoneNumber
    /// Sender bytes in the block, or (-1, -1) for `validate.default_sender`.
    var senderStart: Int
    var senderEnd: Int
    var messageStart: Int
    var messageEnd: Int
    var product: UInt8
    /// nil for products that are not SMS.
    var encoding: SMSEncoding?
    var segments: Int32
    /// The row's own `schedule_at` (UTC seconds), 0 when it has none.
    var scheduleAt: Int64
    /// DLT ids in the block; start == end when absent.
    var templateStart = 0, templateEnd = 0
    var entityStart = 0, entityEnd = 0
}

/// What validation made of one record.
enum RowOutcome {
    case valid(ValidRow)
    case rejected(ReasonCode, detail: String)
}

/// A product as the validator sees it: its code and rule, looked up by index.
struct ProductEntry {
    let code: String
    let codeBytes: [UInt8]
    let rule: ProductRule
    var isPromotional: Bool { code == "P" }
}

/// Applies the rules of SPEC §5 to one record, in the table's order, so a row that breaks
/// several rules gets the first reason.
struct RowValidator {
    let columns: ColumnMap
    let products: [ProductEntry]
    let defaultProduct: UInt8
    let defaultSender: [UInt8]?
    let home: HomeCountry
    let maxSegments: Int
    let timeZone: TimeZone
    let now: Int64
    let maxAhead: Int64
    let promo: PromoWindow
    let optOut: Set<UInt64>

    init(columns: ColumnMap, config: PipelineConfig, productOverride: String?, now: Int64, optOut: Set<UInt64>) {
        self.columns = columns
        products = RowValidator.productTable(config.validate)
        let wanted = (productOverride ?? config.validate.defaultProduct).uppercased()
        defaultProduct = UInt8(products.firstIndex { $0.code == wanted } ?? 0)
        defaultSender = config.validate.defaultSender.map { Array($0.utf8) }
        home = HomeCountry(iso: config.validate.homeCountry) ?? HomeCountry(iso: "IN")!
        maxSegments = config.validate.maxSegments
        timeZone = TimeZone(identifier: config.validate.timezone) ?? TimeZone(identifier: "Asia/Kolkata")!
        self.now = now
        maxAhead = Int64(config.split.maxAhead)
        promo = config.validate.promoWindow
        self.optOut = optOut
    }

    /// Products in a stable order (by code) so an index identifies one.
    static func productTable(_ v: ValidateConfig) -> [ProductEntry] {
        v.products.keys.sorted().map { ProductEntry(code: $0, codeBytes: Array($0.utf8), rule: v.products[$0]!) }
    }

    func validate(_ r: RecordInfo, in block: borrowing RecordBlock) -> RowOutcome {
        if r.malformed {
            return .rejected(.wrongFieldCount, detail: "bad quoting: a quote inside an unquoted field or a quoted field not closed")
        }
        if r.fieldCount != columns.fieldCount {
            return .rejected(.wrongFieldCount, detail: "\(r.fieldCount) fields, the header has \(columns.fieldCount)")
        }
        for i in 0..<r.fieldCount {
            let f = block.field(r, i)
            if !isValidUTF8(f) {
                let hint = Transcoder.looksLikeWindows1252(f)
                    ? ": its bytes look like Windows-1252 (an accented letter as one byte, as Excel saves \"CSV\"); set input.encoding: windows-1252" : ""
                return .rejected(.invalidUTF8, detail: "column \(i + 1) is not valid UTF-8" + hint)
            }
            if f.count > 0 && memchr(f.baseAddress!, 0, f.count) != nil {
                return .rejected(.invalidUTF8, detail: "column \(i + 1) holds a NUL byte")
            }
        }
        func cell(_ role: ColumnRole) -> UnsafeBufferPointer<UInt8> {
            guard let i = columns[role] else { return UnsafeBufferPointer(start: nil, count: 0) }
            return trimSpacesAndTabs(block.field(r, i))
        }

        let rawRecipient = cell(.recipient)
        if rawRecipient.isEmpty { return .rejected(.missingRecipient, detail: "") }
        guard let recipient = RecipientNormalizer.normalizePasted(rawRecipient, home: home) else {
            return .rejected(.invalidRecipient, detail: PastedNumber.diagnosis(rawRecipient) ?? "not a valid mobile number")
        }

        let productCell = cell(.product)
        var product = defaultProduct
        if !productCell.isEmpty {
            guard let p = lookupProduct(productCell) else {
                return .rejected(.invalidProduct, detail: "accepted: \(products.map(\.code).joined(separator: " "))")
            }
            product = p
        }
        let entry = products[Int(product)]
        if entry.rule.domestic && !RecipientNormalizer.isHome(recipient, home: home) {
            return .rejected(.foreignRecipient, detail: "product \(entry.code) is a domestic route (\(home.iso))")
        }

        var senderStart = -1, senderEnd = -1
        let senderCell = cell(.sender)
        if !senderCell.isEmpty {
            senderStart = block.offset(of: senderCell.baseAddress)
            senderEnd = senderStart + senderCell.count
            if !entry.rule.sender.accepts(senderCell) {
                return .rejected(.invalidSender, detail: "product \(entry.code) needs \(entry.rule.sender.explanation)")
            }
        } else if let d = defaultSender {
            let ok = d.withUnsafeBufferPointer { entry.rule.sender.accepts($0) }
            if !ok { return .rejected(.invalidSender, detail: "default_sender: product \(entry.code) needs \(entry.rule.sender.explanation)") }
        } else {
            return .rejected(.missingSender, detail: "")
        }

        guard let mi = columns[.message] else { return .rejected(.missingMessage, detail: "") }
        let message = block.field(r, mi)
        if isBlank(message) { return .rejected(.missingMessage, detail: "") }
        var encoding: SMSEncoding? = nil
        var segments: Int32 = 0
        if entry.rule.channel == .sms {
            let count = SegmentCounter.count(message)
            encoding = count.encoding
            segments = Int32(count.segments)
            if count.segments > maxSegments {
                return .rejected(.messageTooLong, detail: "\(count.segments) parts (\(count.encoding.name)), at most \(maxSegments)")
            }
        } else {
            let scalars = SegmentCounter.scalarCount(message)
            if scalars > 4096 { return .rejected(.messageTooLong, detail: "\(scalars) characters, at most 4096") }
        }

        var scheduleAt: Int64 = 0
        let scheduleCell = cell(.scheduleAt)
        if !scheduleCell.isEmpty {
            guard let t = ScheduleParser.parse(scheduleCell, timeZone: timeZone) else {
                return .rejected(.invalidSchedule, detail: "not a date and time (ISO 8601 or YYYY-MM-DD HH:MM)")
            }
            if t <= now + 300 { return .rejected(.invalidSchedule, detail: "not more than 5 minutes ahead") }
            if t >= now + maxAhead { return .rejected(.invalidSchedule, detail: "not less than split.max_ahead ahead") }
            scheduleAt = t
        }

        let template = cell(.templateId), entity = cell(.entityId)
        if !template.isEmpty && !isValidDLTId(template) {
            return .rejected(.invalidDLTId, detail: "template_id must be 11 to 19 digits")
        }
        if !entity.isEmpty && !isValidDLTId(entity) {
            return .rejected(.invalidDLTId, detail: "entity_id must be 11 to 19 digits")
        }

        // A row without its own time goes with its batch; the first batch goes at once, so
        // `now` is the time checked here (later batches are deferred by the split stage).
        if entry.isPromotional && promo.action == .reject && !promo.contains(scheduleAt != 0 ? scheduleAt : now) {
            return .rejected(.outsidePromoWindow, detail: "promotional messages go between \(promo.startText) and \(promo.endText) \(promo.timezone)")
        }

        if !optOut.isEmpty && optOut.contains(recipient.value) { return .rejected(.optedOut, detail: "") }

        let messageStart = block.offset(of: message.baseAddress)
        let templateStart = block.offset(of: template.baseAddress), entityStart = block.offset(of: entity.baseAddress)
        return .valid(ValidRow(
            recipient: recipient, senderStart: senderStart, senderEnd: senderEnd,
            messageStart: messageStart, messageEnd: messageStart + message.count,
            product: product, encoding: encoding, segments: segments, scheduleAt: scheduleAt,
            templateStart: templateStart, templateEnd: templateStart + template.count,
            entityStart: entityStart, entityEnd: entityStart + entity.count))
    }

    /// Case-insensitive product lookup on bytes.
    private func lookupProduct(_ b: UnsafeBufferPointer<UInt8>) -> UInt8? {
        guard b.count <= 8 else { return nil }
        outer: for (i, p) in products.enumerated() where p.codeBytes.count == b.count {
            for j in 0..<b.count {
                let c = b[j] >= 0x61 && b[j] <= 0x7A ? b[j] - 32 : b[j]
                if c != p.codeBytes[j] { continue outer }
            }
            return UInt8(i)
        }
        return nil
    }
}

extension SenderRule {
    /// What the rule asks for, in a reject's detail.
    var explanation: String {
        switch self {
        case .dltHeader: "a 6-letter capital DLT header"
        case .numeric6: "a 6-digit sender"
        case .alphanumeric: "1-11 letters, digits or spaces with a letter, or 3-15 digits"
        case .e164: "an E.164 number"
        case .printable: "1-32 printable characters"
        }
    }
}

extension PromoWindow {
    var startText: String { String(format: "%02d:%02d", startMinute / 60, startMinute % 60) }
    var endText: String { String(format: "%02d:%02d", endMinute / 60, endMinute % 60) }
}
