import Foundation

/// One row to send, as the split stage left it: everything a request node and a result row need.
struct QueuedRow: Sendable {
    var row: Int
    var batch: Int
    var product: String
    /// nil for products that are not SMS.
    var encoding: SMSEncoding?
    var segments: Int
    var recipient: PhoneNumber
    /// UTC seconds; 0 = at once.
    var scheduledAt: Int64
    /// The dedupe digest, recorded once sent for the cross-job repetition window.
    var digest: MessageDigest
    var sender: [UInt8]
    var message: [UInt8]
    var templateId: [UInt8]
    var entityId: [UInt8]
}

/// The send queue: the rows to send, in file order, in a compact binary file beside the
/// job's outputs. Pass 1 (ingest … split) writes it; the send stage reads it once the file
/// as a whole has been accepted — and, after a crash, again, so a job resumes from exactly
/// what it planned.
///
/// Record: u32 row, u32 batch, u8 product length, u8 encoding, u16 segments, u64 recipient,
/// i64 scheduled_at, u64 digest high, u64 digest low, u16 sender, u32 message, u16 template, u16 entity lengths, then the bytes.
struct SendQueueWriter: ~Copyable {
    private var file: OutputFile

    init(path: String) throws(ReportError) { file = try OutputFile(path: path) }

    mutating func append(row: Int, batch: Int, product: [UInt8], encoding: SMSEncoding?, segments: Int32, recipient: PhoneNumber,
                         scheduledAt: Int64, digest: MessageDigest, sender: UnsafeBufferPointer<UInt8>, message: UnsafeBufferPointer<UInt8>,
                         templateId: UnsafeBufferPointer<UInt8>, entityId: UnsafeBufferPointer<UInt8>) throws(ReportError) {
        file.raw(UInt32(row)); file.raw(UInt32(batch)); file.raw(UInt8(product.count)); file.raw(encoding.map { $0.rawValue + 1 } ?? 0)
        file.raw(UInt16(truncatingIfNeeded: segments)); file.raw(recipient.value); file.raw(scheduledAt)
        file.raw(digest.high); file.raw(digest.low)
        file.raw(UInt16(sender.count)); file.raw(UInt32(message.count)); file.raw(UInt16(templateId.count))
        file.raw(UInt16(entityId.count))
        file.plain(product)
        file.plain(sender)
        file.plain(message)
        file.plain(templateId)
        file.plain(entityId)
        try file.endRecord()
    }

    consuming func commit() throws(ReportError) { try file.commit() }
    consuming func discard() { file.discard() }
}

/// Reads a send queue back, a row at a time, with a buffered reader.
final class SendQueueReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var position = 0

    init(path: String) throws(ReportError) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ReportError(path: path, errno: errno) }
    }

    deinit { close(fd) }

    private func fill(_ needed: Int) -> Bool {
        if buffer.count - position >= needed { return true }
        buffer.removeFirst(position)
        position = 0
        var chunk = [UInt8](repeating: 0, count: max(1 << 20, needed))
        while buffer.count < needed {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
        }
        return true
    }

    private func take<T: FixedWidthInteger>(_: T.Type) -> T {
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            buffer.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[position..<position + MemoryLayout<T>.size])) }
        }
        position += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    private func bytes(_ n: Int) -> [UInt8] {
        defer { position += n }
        return Array(buffer[position..<position + n])
    }

    /// The next row, or nil at the end of the queue.
    func next() -> QueuedRow? {
        let fixed = 4 + 4 + 1 + 1 + 2 + 8 + 8 + 16 + 2 + 4 + 2 + 2
        guard fill(fixed) else { return nil }
        let row = Int(take(UInt32.self)), batch = Int(take(UInt32.self))
        let productLength = Int(take(UInt8.self))
        let encodingCode = take(UInt8.self)
        let encoding = encodingCode == 0 ? nil : SMSEncoding(rawValue: encodingCode - 1)
        let segments = Int(take(UInt16.self))
        let recipient = PhoneNumber(take(UInt64.self))
        let scheduledAt = take(Int64.self)
        let digest = MessageDigest(high: take(UInt64.self), low: take(UInt64.self))
        let senderLength = Int(take(UInt16.self)), messageLength = Int(take(UInt32.self))
        let templateLength = Int(take(UInt16.self)), entityLength = Int(take(UInt16.self))
        guard fill(productLength + senderLength + messageLength + templateLength + entityLength) else { return nil }
        let product = String(decoding: bytes(productLength), as: UTF8.self)
        return QueuedRow(row: row, batch: batch, product: product, encoding: encoding, segments: segments,
                         recipient: recipient, scheduledAt: scheduledAt, digest: digest, sender: bytes(senderLength),
                         message: bytes(messageLength), templateId: bytes(templateLength), entityId: bytes(entityLength))
    }

    private var lookahead: QueuedRow?

    /// The rows of the next batch (the queue is in batch order), or nil at the end.
    func nextBatch() -> [QueuedRow]? {
        guard let first = lookahead ?? next() else { return nil }
        lookahead = nil
        var rows = [first]
        while let r = next() {
            if r.batch != first.batch { lookahead = r; break }
            rows.append(r)
        }
        return rows
    }
}
