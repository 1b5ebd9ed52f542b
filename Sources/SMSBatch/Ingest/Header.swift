/// Finds the delimiter of a CSV stream from its header line (SPEC §4): the candidate among
/// `,` `;` TAB `|` that occurs most often outside quotes; `,` when none occurs.
func detectDelimiter(_ start: UnsafeRawBufferPointer) -> UInt8 {
    let candidates: [UInt8] = [0x2C, 0x3B, 0x09, 0x7C]
    var counts = [0, 0, 0, 0]
    var quoted = false
    for c in start {
        if c == 0x22 { quoted.toggle(); continue }
        if quoted { continue }
        if c == 0x0A || c == 0x0D { break }
        if let i = candidates.firstIndex(of: c) { counts[i] += 1 }
    }
    let best = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }!
    return counts[best] > 0 ? candidates[best] : 0x2C
}

/// Where each logical column is in a file's header (SPEC §4 aliases).
struct ColumnMap: Equatable {
    /// Column index per role (in `ColumnRole.allCases` order), -1 when the file has no such
    /// column: an array, not a dictionary, since validation asks for every cell of every row.
    private var index = [Int](repeating: -1, count: ColumnRole.allCases.count)
    var fieldCount = 0
    /// The header fields as written, for rejects.csv.
    var names: [[UInt8]] = []
    /// Columns that also match a role already taken, e.g. `phone` after `mobile`: ignored,
    /// and said so in a warning.
    var ignored: [String] = []

    subscript(role: ColumnRole) -> Int? {
        let i = index[role.position]
        return i < 0 ? nil : i
    }

    /// Matches header names to roles: case-insensitive, ignoring spaces, `_` and `-`;
    /// the first column matching a role wins.
    init(header: [[UInt8]], input: InputConfig) {
        names = header
        fieldCount = header.count
        var aliasToRole: [String: ColumnRole] = [:]
        for role in ColumnRole.allCases {
            for alias in input.aliases(for: role) {
                let key = ColumnMap.canonical(Array(alias.utf8))
                if aliasToRole[key] == nil { aliasToRole[key] = role }
            }
        }
        // A column named exactly as the role wins over aliases (`message` over `text`); then
        // the first alias, left to right.
        let keys = header.map(ColumnMap.canonical)
        for role in ColumnRole.allCases {
            if let i = keys.firstIndex(of: ColumnMap.canonical(Array(role.rawValue.utf8))) { index[role.position] = i }
        }
        for (i, key) in keys.enumerated() {
            guard let role = aliasToRole[key] else { continue }
            if index[role.position] < 0 {
                index[role.position] = i
            } else if index[role.position] != i {
                let name = String(decoding: header[i], as: UTF8.self)
                ignored.append("column \(i + 1) '\(name)' is also a \(role.rawValue) column; the one in column \(index[role.position] + 1) is used")
            }
        }
    }

    init() {}

    /// Where each column of header `first` is in header `names`: the same name (compared as
    /// SPEC §4 compares them), else the column of the same role; -1 when it has none.
    static func placement(of names: [[UInt8]], _ columns: ColumnMap, under first: [[UInt8]], _ firstColumns: ColumnMap) -> [Int] {
        let keys = names.map(canonical)
        return first.enumerated().map { j, name in
            if let i = keys.firstIndex(of: canonical(name)) { return i }
            for role in ColumnRole.allCases where firstColumns[role] == j { return columns[role] ?? -1 }
            return -1
        }
    }

    static func canonical(_ name: [UInt8]) -> String {
        var out: [UInt8] = []
        for c in name where c != 0x20 && c != 0x5F && c != 0x2D && c != 0x09 {
            out.append(c >= 0x41 && c <= 0x5A ? c + 32 : c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension ColumnRole {
    /// Position in `allCases`.
    var position: Int {
        switch self {
        case .recipient: 0
        case .sender: 1
        case .message: 2
        case .product: 3
        case .scheduleAt: 4
        case .templateId: 5
        case .entityId: 6
        case .ref: 7
        }
    }
}
