import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

@Test("reason codes are ordered as in SPEC §5's table")
func reasonOrder() {
    #expect(ReasonCode.allCases.map(\.code) == [
        "wrong_field_count", "invalid_utf8", "missing_recipient", "invalid_recipient",
        "invalid_product", "foreign_recipient", "missing_sender", "invalid_sender",
        "missing_message", "message_too_long", "invalid_schedule", "invalid_dlt_id",
        "outside_promo_window", "opted_out",
    ])
}
