/// A plain-text table for a terminal: every column as wide as its widest cell, two spaces
/// between columns, numbers right-aligned.
struct TextTable {
    enum Alignment { case left, right }

    private let header: [String]
    private let alignments: [Alignment]
    private var rows: [[String]] = []

    init(_ columns: [(String, Alignment)]) {
        header = columns.map(\.0)
        alignments = columns.map(\.1)
    }

    mutating func add(_ cells: [String]) { rows.append(cells) }

    var rendered: String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return all.map { cells in
            var line = ""
            for i in header.indices {
                let cell = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let last = i == header.count - 1
                line += (i > 0 ? "  " : "") + (alignments[i] == .right ? pad + cell : cell + (last ? "" : pad))
            }
            return line
        }.joined(separator: "\n")
    }
}

/// A count as people read it: 28354 → "28,354".
public func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}
