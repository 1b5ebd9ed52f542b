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

/// The in-file dedupe index: a flat open-addressing table of digests with the row that
/// first had each one. 20 bytes a slot, never the strings; grows at 3/4 full.
struct DedupeIndex: ~Copyable {
    private var highs: UnsafeMutablePointer<UInt64>
    private var lows: UnsafeMutablePointer<UInt64>
    /// First row per slot; 0 marks an empty slot (row numbers start at 2).
    private var rows: UnsafeMutablePointer<UInt32>
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1 << 16) {
        var c = 16
        while c < capacity { c <<= 1 }
        mask = c - 1
        highs = .allocate(capacity: c)
        lows = .allocate(capacity: c)
        rows = .allocate(capacity: c)
        rows.initialize(repeating: 0, count: c)
    }

    deinit {
        highs.deallocate()
        lows.deallocate()
        rows.deallocate()
    }

    /// Bytes held by the table.
    var memoryBytes: Int { (mask + 1) * 20 }

    /// Records `digest` as first seen at `row`, or returns the row that had it first.
    mutating func insert(_ d: MessageDigest, row: Int) -> Int? {
        if (count + 1) * 4 > (mask + 1) * 3 { grow() }
        var i = Int(truncatingIfNeeded: d.low) & mask
        while rows[i] != 0 {
            if highs[i] == d.high && lows[i] == d.low { return Int(rows[i]) }
            i = (i + 1) & mask
        }
        highs[i] = d.high
        lows[i] = d.low
        rows[i] = UInt32(truncatingIfNeeded: row)
        count += 1
        return nil
    }

    private mutating func grow() {
        let oldCapacity = mask + 1
        let (oh, ol, or) = (highs, lows, rows)
        let c = oldCapacity * 2
        mask = c - 1
        highs = .allocate(capacity: c)
        lows = .allocate(capacity: c)
        rows = .allocate(capacity: c)
        rows.initialize(repeating: 0, count: c)
        for j in 0..<oldCapacity where or[j] != 0 {
            var i = Int(truncatingIfNeeded: ol[j]) & mask
            while rows[i] != 0 { i = (i + 1) & mask }
            highs[i] = oh[j]
            lows[i] = ol[j]
            rows[i] = or[j]
        }
        oh.deallocate()
        ol.deallocate()
        or.deallocate()
    }
}
