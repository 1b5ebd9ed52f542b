import Foundation

/// A 128-bit digest of (sender, recipient, message): what the dedupe index stores instead of
/// the strings. Two independent 64-bit lanes of multiply-xorshift mixing over 8-byte words,
/// each finished with MurmurHash3's fmix64; at 128 bits a false match among a million rows
/// is far less likely than a disk error.
struct MessageDigest: Hashable, Sendable {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(sender: UnsafeBufferPointer<UInt8>, recipient: UInt64, message: UnsafeBufferPointer<UInt8>) {
        var a: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ recipient
        var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F &+ recipient &* 0x1656_67B1_9E37_79F9
        MessageDigest.mix(sender, &a, &b)
        a ^= UInt64(sender.count) &* 0xFF51_AFD7_ED55_8CCD
        MessageDigest.mix(message, &a, &b)
        a ^= UInt64(message.count)
        b ^= UInt64(message.count) &* 0xC4CE_B9FE_1A85_EC53
        high = MessageDigest.fmix(a &+ b)
        low = MessageDigest.fmix(b ^ (a >> 29) ^ high)
    }

    @inline(__always)
    private static func mix(_ bytes: UnsafeBufferPointer<UInt8>, _ a: inout UInt64, _ b: inout UInt64) {
        guard let base = bytes.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            a = (a ^ w) &* 0x87C3_7B91_1142_53D5
            a = (a << 31) | (a >> 33)
            b = (b &+ w) &* 0x4CF5_AD43_2745_937F
            b ^= b >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(base[i]) << shift
            shift += 8
            i += 1
        }
        a = (a ^ tail ^ (UInt64(n) << 56)) &* 0x87C3_7B91_1142_53D5
        b = (b &+ tail) &* 0x4CF5_AD43_2745_937F
        b ^= b >> 31
    }

    @inline(__always)
    private static func fmix(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k = k &* 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k = k &* 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }
}

/// The in-file dedupe index: each unique row's digest and first row number, 16 bytes, in
/// an array that grows in place (glibc's realloc moves large blocks with mremap, no copy),
/// plus an open-addressing table of 4-byte slots: 28 bits of position and a 4-bit tag of
/// the digest, so most probes of a new row never touch the array. About 23 bytes a unique
/// row all told; never the strings.
struct DedupeIndex: ~Copyable {
    /// (digest high, digest low 32 bits, first row) per unique row, in file order.
    private var entries: UnsafeMutablePointer<Entry>
    private var entryCapacity: Int
    private(set) var count = 0
    /// 0 = empty; else (position + 1) << 4 | tag.
    private var slots: UnsafeMutablePointer<UInt32>
    private var mask: Int

    private struct Entry {
        var high: UInt64
        var low: UInt32
        var row: UInt32
    }

    /// 28 bits of position: 268 million unique rows.
    static let maxRows = (1 << 28) - 2

    init(capacity: Int = 1 << 14) {
        var c = 16
        while c < capacity { c <<= 1 }
        mask = c - 1
        slots = .allocate(capacity: c)
        slots.initialize(repeating: 0, count: c)
        entryCapacity = c / 2
        entries = malloc(entryCapacity * MemoryLayout<Entry>.stride)!.bindMemory(to: Entry.self, capacity: entryCapacity)
    }

    deinit {
        slots.deallocate()
        free(entries)
    }

    /// Records `d` as first seen at `row`, or returns the row that had it first.
    mutating func insert(_ d: MessageDigest, row: Int) -> Int? {
        if (count + 1) * 4 > (mask + 1) * 3 { growSlots() }
        let low = UInt32(truncatingIfNeeded: d.low)
        let tag = UInt32(truncatingIfNeeded: d.low >> 60)
        var i = Int(truncatingIfNeeded: d.low) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            if s & 0xF == tag {
                let e = entries[Int(s >> 4) - 1]
                if e.high == d.high && e.low == low { return Int(e.row) }
            }
            i = (i + 1) & mask
        }
        precondition(count < DedupeIndex.maxRows, "more unique rows than the dedupe index holds")
        if count == entryCapacity {
            entryCapacity *= 2
            entries = realloc(entries, entryCapacity * MemoryLayout<Entry>.stride)!.bindMemory(to: Entry.self, capacity: entryCapacity)
        }
        entries[count] = Entry(high: d.high, low: low, row: UInt32(truncatingIfNeeded: row))
        count += 1
        slots[i] = UInt32(count) << 4 | tag
        return nil
    }

    private mutating func growSlots() {
        let old = slots, oldCapacity = mask + 1
        let c = oldCapacity * 2
        mask = c - 1
        slots = .allocate(capacity: c)
        slots.initialize(repeating: 0, count: c)
        // Re-place every entry; its home slot comes from the digest, kept in the entry.
        for j in 0..<oldCapacity where old[j] != 0 {
            let e = entries[Int(old[j] >> 4) - 1]
            var i = Int(truncatingIfNeeded: UInt64(e.low)) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = old[j]
        }
        old.deallocate()
    }
}
