import Foundation

/// A failed database call: the engine's code and its own message, with the statement.
struct SQLError: Error, Sendable, CustomStringConvertible {
    /// SQLite's primary result code (`SQLITE_BUSY` = 5, `SQLITE_CONSTRAINT` = 19, …). For
    /// PostgreSQL the same numbers where they mean the same (19 for a constraint, SQLSTATE
    /// class 23), else 1; its SQLSTATE is in `state`.
    let code: Int32
    /// The engine's own message.
    let message: String
    /// The statement that failed, empty for open/close.
    let sql: String
    /// PostgreSQL's SQLSTATE (`23505`, `40P01` …); empty for SQLite.
    var state = ""
    /// The connection was lost (PostgreSQL): whether the statement ran is unknown.
    var connectionLost = false

    var description: String { sql.isEmpty ? message : "\(message) (in: \(sql))" }

    /// SQLite's code for a constraint that refused a write.
    static let constraint: Int32 = 19
}

/// A value bound to a statement parameter or read from a column.
enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
    case blob(Data)
}

/// One result row, copied out of the statement.
struct SQLRow: Sendable {
    let values: [SQLValue]

    subscript(_ i: Int) -> SQLValue { values[i] }

    func int64(_ i: Int) -> Int64? { if case .integer(let v) = values[i] { v } else { nil } }
    func int(_ i: Int) -> Int? { int64(i).map { Int($0) } }
    func string(_ i: Int) -> String? { if case .text(let v) = values[i] { v } else { nil } }
    func data(_ i: Int) -> Data? {
        switch values[i] {
        case .blob(let v): v
        case .null: nil
        default: Data()
        }
    }
}

/// One connection the ledger's SQL runs on: `SQLiteDatabase` (a file, one host) or
/// `PostgresDatabase` (a server several hosts share). Statements use `?` placeholders.
/// Every method serialises on the connection; a transaction holds it from BEGIN to COMMIT.
protocol SQLDatabase: AnyObject, Sendable {
    /// Runs one statement to completion and returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> Int
    /// Runs `sql`, which may hold several statements, without bindings (schema).
    func executeScript(_ sql: String) throws(SQLError)
    /// Runs a query and copies out every row.
    func query(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> [SQLRow]
    /// Runs a query and hands each row to `body`.
    func forEachRow(_ sql: String, _ bindings: [SQLValue], _ body: (SQLRow) -> Void) throws(SQLError)
    /// Runs `body` as one write transaction, durable when it returns; rolled back if it throws.
    func transaction<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T
    /// Runs `body` in one read transaction: every query in it sees the same committed state.
    func snapshot<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T
    /// Told the seconds of each write transaction, BEGIN to COMMIT (metrics).
    var onCommit: (@Sendable (Double) -> Void)? { get set }
    func close()
}

extension SQLDatabase {
    @discardableResult
    func execute(_ sql: String) throws(SQLError) -> Int { try execute(sql, []) }
    func query(_ sql: String) throws(SQLError) -> [SQLRow] { try query(sql, []) }
}
