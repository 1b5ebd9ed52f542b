import Foundation
internal import CSQLite

/// One SQLite connection through the C API.
///
/// One class owns one `sqlite3*` and closes it in `close()` or `deinit`; no C type leaves it.
/// Prepared statements are cached by their SQL text and reset after each use.
final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    // @unchecked: the sender's concurrent tasks share one connection; every access to `handle`
    // and `statements` holds `lock`, and a transaction holds it from BEGIN to COMMIT so no
    // other task's statement lands inside it. Recursive so the body can run statements.
    private let lock = NSRecursiveLock()
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    /// SQLite copies bound text and blobs before the call returns (SQLITE_TRANSIENT; the C
    /// macro is a cast Swift cannot import).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    /// An address for the empty string: SQLite binds a null pointer as NULL, not as "".
    private nonisolated(unsafe) static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    /// Opens (creating if needed, unless `create` is false) the database at `path`, read-write
    /// and serialized, with a busy timeout (10 s by default) so a second process waits for a
    /// lock instead of failing at once.
    ///
    /// - Throws: `SQLError` when the file cannot be opened or is not a database.
    init(path: String, create: Bool = true, busyTimeout: Double = 10) throws(SQLError) {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLError(code: rc, message: message, sql: "")
        }
        handle = db
        sqlite3_busy_timeout(db, Int32(busyTimeout * 1000))
    }

    /// Told the seconds of each write transaction, BEGIN to COMMIT (metrics).
    var onCommit: (@Sendable (Double) -> Void)?

    deinit { close() }

    /// Finalizes the cached statements and closes the connection; later calls throw
    /// `SQLITE_MISUSE`. Calling it twice is harmless.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        for s in statements.values { sqlite3_finalize(s) }
        statements = [:]
        if let h = handle { sqlite3_close_v2(h) }
        handle = nil
    }

    // MARK: - Statements

    /// Runs one statement to completion and returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue] = []) throws(SQLError) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let (db, s) = try prepared(sql, bindings)
        defer { sqlite3_reset(s) }
        var rc = sqlite3_step(s)
        while rc == SQLITE_ROW { rc = sqlite3_step(s) }
        guard rc == SQLITE_DONE else { throw error(rc, db, sql) }
        return Int(sqlite3_changes(db))
    }

    /// Runs `sql`, which may hold several statements, without bindings (schema migrations).
    func executeScript(_ sql: String) throws(SQLError) {
        lock.lock()
        defer { lock.unlock() }
        let db = try open(sql)
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, db, sql) }
    }

    /// Runs a query and copies out every row.
    func query(_ sql: String, _ bindings: [SQLValue] = []) throws(SQLError) -> [SQLRow] {
        lock.lock()
        defer { lock.unlock() }
        let (db, s) = try prepared(sql, bindings)
        defer { sqlite3_reset(s) }
        let columns = sqlite3_column_count(s)
        var rows: [SQLRow] = []
        var rc = sqlite3_step(s)
        while rc == SQLITE_ROW {
            var values: [SQLValue] = []
            values.reserveCapacity(Int(columns))
            for i in 0..<columns { values.append(Self.column(s, i)) }
            rows.append(SQLRow(values: values))
            rc = sqlite3_step(s)
        }
        guard rc == SQLITE_DONE else { throw error(rc, db, sql) }
        return rows
    }

    /// Runs a query and hands each row to `body` as it is stepped to, without keeping them.
    func forEachRow(_ sql: String, _ bindings: [SQLValue] = [], _ body: (SQLRow) -> Void) throws(SQLError) {
        lock.lock()
        defer { lock.unlock() }
        let (db, s) = try prepared(sql, bindings)
        defer { sqlite3_reset(s) }
        let columns = sqlite3_column_count(s)
        var rc = sqlite3_step(s)
        while rc == SQLITE_ROW {
            body(SQLRow(values: (0..<columns).map { Self.column(s, $0) }))
            rc = sqlite3_step(s)
        }
        guard rc == SQLITE_DONE else { throw error(rc, db, sql) }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` … `COMMIT` (one fsync), rolling back if it throws.
    ///
    /// IMMEDIATE takes the write lock up front, so a second process waits (busy timeout) at
    /// BEGIN rather than failing at COMMIT. Transactions do not nest.
    func transaction<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let started = ContinuousClock.now
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            onCommit?((ContinuousClock.now - started).seconds)
            return result
        } catch {
            // After a failed COMMIT SQLite may already have rolled back; ignore that error.
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` in one deferred (read) transaction: every query in it sees the same
    /// committed state, whatever other connections commit meanwhile (WAL snapshot).
    func snapshot<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T {
        lock.lock()
        defer { lock.unlock() }
        try execute("BEGIN DEFERRED")
        defer { _ = try? execute("COMMIT") }
        return try body()
    }

    // MARK: - Internals (callers hold `lock`)

    private func open(_ sql: String) throws(SQLError) -> OpaquePointer {
        guard let h = handle else { throw SQLError(code: SQLITE_MISUSE, message: "database is closed", sql: sql) }
        return h
    }

    /// The cached statement for `sql`, reset and with `bindings` bound.
    private func prepared(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> (OpaquePointer, OpaquePointer) {
        let db = try open(sql)
        let s: OpaquePointer
        if let cached = statements[sql] {
            s = cached
            sqlite3_clear_bindings(s)
        } else {
            var new: OpaquePointer?
            let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &new, nil)
            guard rc == SQLITE_OK, let new else { throw error(rc, db, sql) }
            statements[sql] = new
            s = new
        }
        for (i, value) in bindings.enumerated() {
            let n = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(s, n)
            case .integer(let v): rc = sqlite3_bind_int64(s, n, v)
            case .text(var v):
                // By length, so a NUL inside the text survives.
                rc = v.withUTF8 { u in
                    u.withMemoryRebound(to: CChar.self) {
                        sqlite3_bind_text64(s, n, $0.baseAddress ?? Self.empty, UInt64($0.count), Self.transient, UInt8(SQLITE_UTF8))
                    }
                }
            case .blob(let v):
                // An empty Data may have no address, which SQLite would bind as NULL.
                rc = v.isEmpty ? sqlite3_bind_zeroblob(s, n, 0)
                    : v.withUnsafeBytes { sqlite3_bind_blob64(s, n, $0.baseAddress, UInt64($0.count), Self.transient) }
            }
            guard rc == SQLITE_OK else { throw error(rc, db, sql) }
        }
        return (db, s)
    }

    private static func column(_ s: OpaquePointer, _ i: Int32) -> SQLValue {
        switch sqlite3_column_type(s, i) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(s, i))
        case SQLITE_TEXT:
            let n = Int(sqlite3_column_bytes(s, i))
            guard let p = sqlite3_column_text(s, i) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
        case SQLITE_BLOB:
            let n = Int(sqlite3_column_bytes(s, i))
            guard let p = sqlite3_column_blob(s, i), n > 0 else { return .blob(Data()) }
            return .blob(Data(bytes: p, count: n))
        case SQLITE_FLOAT: return .integer(Int64(sqlite3_column_double(s, i)))
        default: return .null
        }
    }

    private func error(_ rc: Int32, _ db: OpaquePointer, _ sql: String) -> SQLError {
        SQLError(code: rc & 0xFF, message: String(cString: sqlite3_errmsg(db)), sql: sql)
    }
}
