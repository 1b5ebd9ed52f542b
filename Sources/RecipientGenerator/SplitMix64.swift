/// SplitMix64: a small, fast, seedable generator, so the same seed gives the same file on
/// every machine and toolchain (Swift's own generators promise neither).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<n; the modulo bias is irrelevant for test data.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// true with probability p.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) * 0x1p-53 < p }

    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
}
