/// A valid recipient in E.164 form, kept as its digits read as one integer: hashing and
/// comparing a `UInt64` is what dedupe and the opt-out list do 700,000 times a file.
///
/// E.164 numbers never start with 0 and have at most 15 digits, so the integer loses nothing.
public struct PhoneNumber: Hashable, Sendable, CustomStringConvertible {
    /// The digits after `+`, e.g. 919876543210 for `+919876543210`.
    public let value: UInt64

    init(_ value: UInt64) { self.value = value }

    /// How many digits the number has (1 for 0, which no normalised number is).
    package var digitCount: Int {
        var n = 1
        while n < pow10.count, value >= pow10[n] { n += 1 }
        return n
    }

    /// Appends `+` and the digits as ASCII (for the output CSVs, without a String).
    func write(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "+"))
        var p = pow10[digitCount - 1]
        while p > 0 {
            out.append(0x30 + UInt8(truncatingIfNeeded: value / p % 10))
            p /= 10
        }
    }

    /// The E.164 form, `+919876543210`.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        write(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// 10⁰ … 10¹⁹, every power a `UInt64` holds.
private let pow10: [UInt64] = (0...19).reduce(into: []) { a, k in a.append(k == 0 ? 1 : a[k - 1] * 10) }

/// Turns a recipient cell into a `PhoneNumber` (SPEC §5 "Recipient normalisation").
package enum RecipientNormalizer {
    /// The normalised number, or nil when the field is not a valid number (`invalid_recipient`).
    ///
    /// Spaces, `-`, `.`, `(` and `)` are ignored anywhere. One `+` is allowed before the first
    /// digit (so `(+91) 98765 43210` works). `+CC…` and `00CC…` are international; otherwise
    /// one leading `0` is a trunk prefix and the home calling code is put in front.
    ///
    /// - India (calling code 91, whatever the home country): 91 and 10 digits starting 6–9.
    ///   A `+91` number that breaks this is invalid, not foreign.
    /// - Home IN, no prefix: 10 digits are national; 12 digits starting 91 are already
    ///   international (operators export `919876543210`); any other length is invalid.
    /// - Other home countries have national numbers of varying length, so without a trunk `0`
    ///   a number that starts with the home code and has at least 10 digits is taken as
    ///   already international (`447911123456` with home GB), and a shorter or other one as
    ///   national (`7911123456` → `+447911123456`). Ambiguous by nature; 10 is the shortest
    ///   common international length that is not also a common national one.
    /// - Everywhere else: E.164, 8–15 digits in all.
    package static func normalize(_ field: UnsafeBufferPointer<UInt8>, home: HomeCountry) -> PhoneNumber? {
        var plus = false
        var leadingZeros = 0
        var value: UInt64 = 0   // digits after the leading zeros
        var digits = 0
        // `9876543210.0`: a float's tail, not digits (see `PastedNumber`).
        var dots = 0, digitsAfterDot = 0, nonZeroAfterDot = false
        for c in field {
            switch c {
            case 0x30:
                if digits == 0 { leadingZeros += 1; if leadingZeros > 2 { return nil } }
                else { value &*= 10; digits += 1 }
                if dots > 0 { digitsAfterDot += 1 }
            case 0x31...0x39:
                value = value &* 10 &+ UInt64(c &- 0x30)
                digits += 1
                if dots > 0 { digitsAfterDot += 1; nonZeroAfterDot = true }
            case 0x2E:  // .
                dots += 1
                digitsAfterDot = 0
                nonZeroAfterDot = false
                continue
            case 0x20, 0x2D, 0x28, 0x29:  // space - ( )
                continue
            case 0x2B:  // +
                guard !plus, digits == 0, leadingZeros == 0 else { return nil }
                plus = true
            default:
                return nil
            }
            if digits > 15 { return nil }
        }
        guard digits > 0 else { return nil }
        if dots == 1 && digitsAfterDot > 0 && !nonZeroAfterDot { return nil }
        let cc = callingCode(home)

        if plus || leadingZeros == 2 {
            // International; `+0…` and `+00…` are not numbers.
            guard !(plus && leadingZeros > 0) else { return nil }
        } else if leadingZeros == 1 {
            if let len = home.nationalLength, digits != len { return nil }
            (value, digits) = prefixed(cc, value, digits)
        } else if let len = home.nationalLength {
            if digits == len {
                (value, digits) = prefixed(cc, value, digits)
            } else if !(digits == len + cc.digits && value / pow10[len] == cc.value) {
                return nil
            }
        } else if !(digits >= 10 && value / pow10[digits - cc.digits] == cc.value) {
            (value, digits) = prefixed(cc, value, digits)
        }
        return isValidE164(value, digits) ? PhoneNumber(value) : nil
    }

    /// True when the number is in `home` (its leading digits are the home calling code).
    static func isHome(_ n: PhoneNumber, home: HomeCountry) -> Bool {
        let cc = callingCode(home)
        let d = n.digitCount
        return d > cc.digits && n.value / pow10[d - cc.digits] == cc.value
    }

    // MARK: -

    private static func callingCode(_ home: HomeCountry) -> (value: UInt64, digits: Int) {
        var v: UInt64 = 0
        var d = 0
        for c in home.callingCode.utf8 { v = v * 10 + UInt64(c - 0x30); d += 1 }
        return (v, d)
    }

    @inline(__always)
    private static func prefixed(_ cc: (value: UInt64, digits: Int), _ v: UInt64, _ d: Int) -> (UInt64, Int) {
        (cc.value * pow10[d] + v, d + cc.digits)
    }

    /// India's mobile plan for +91, the generic E.164 length rule for everything else.
    @inline(__always)
    private static func isValidE164(_ v: UInt64, _ d: Int) -> Bool {
        if d >= 2, v / pow10[d - 2] == 91 {
            return d == 12 && (6...9).contains(v / pow10[9] % 10)
        }
        return (8...15).contains(d)
    }
}
