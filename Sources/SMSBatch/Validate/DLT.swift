/// True when a trimmed `template_id` / `entity_id` is a DLT registration id: 11–19 ASCII
/// digits (else `invalid_dlt_id`).
func isValidDLTId(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    (11...19).contains(b.count) && b.allSatisfy { $0 &- 0x30 < 10 }
}
