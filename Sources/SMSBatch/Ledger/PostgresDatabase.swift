import Foundation
internal import CPQ

/// One PostgreSQL connection through libpq, speaking the ledger's SQL (`?` placeholders).
///
/// A lost connection (the server restarted, the network dropped) is not an error at once:
/// the call reconnects, every half second for up to `reconnectFor` seconds, and runs its
/// statement (or its whole transaction) again. A transaction whose COMMIT got no answer is
/// run again too; every ledger transaction is written so that running it twice is harmless
/// (an intent recorded twice leaves one in doubt, found submitted by its lookup).
final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    // @unchecked: every access to `connection` holds `lock` (recursive: a transaction's body
    // runs statements), so one task's statement never lands inside another's transaction.
    private let lock = NSRecursiveLock()
    private var connection: OpaquePointer?
    private let keywords: [String]
    private let values: [String]
    /// Where it connects, without the password: for messages.
    let target: String
    private let reconnectFor: Double
    private var inTransaction = false
    /// `close()` was called: no reconnecting.
    private var closed = false
    private var placeholders: [String: String] = [:]

    var onCommit: (@Sendable (Double) -> Void)?

    /// Connects to `url` (`postgres://user@host:port/db`), with `password` when given.
    ///
    /// `deadPeer`: seconds within which each side gives up on a peer that vanished without a
    /// word (its host died or its network went): TCP keepalives and a user timeout on both
    /// ends, and on the server a transaction left idle that long is ended. A worker whose
    /// host dies mid-transaction would otherwise hold its row and advisory locks until the
    /// kernel's two-hour keepalive, and every other worker would wait on them.
    ///
    /// - Throws: `SQLError` when the server cannot be reached or refuses the login.
    init(url: String, password: String?, reconnectFor: Double = 120, deadPeer: Int = 30,
         applicationName: String = "smsbatch") throws(SQLError) {
        let idle = max(1, deadPeer / 3), interval = max(1, deadPeer / 6)
        let server = "-c tcp_keepalives_idle=\(idle) -c tcp_keepalives_interval=\(interval) -c tcp_keepalives_count=3"
            + " -c tcp_user_timeout=\(deadPeer * 1000) -c idle_in_transaction_session_timeout=\(deadPeer * 1000)"
        var keywords = ["dbname", "connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "options"]
        var values = [url, "5", applicationName, "1", "\(idle)", "\(interval)", "3", "\(deadPeer * 1000)", server]
        if let password { keywords.append("password"); values.append(password) }
        self.keywords = keywords
        self.values = values
        self.target = PostgresDatabase.redacted(url)
        self.reconnectFor = reconnectFor
        try connect()
    }

    deinit { close() }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if let c = connection { PQfinish(c) }
        connection = nil
        closed = true
    }

    /// The URL without a password written into it.
    static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url), parts.password != nil else { return url }
        parts.password = "***"
        return parts.string ?? url
    }

    // MARK: - Statements

    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> Int {
        try retrying(sql) { () throws(SQLError) -> Int in
            let result = try run(sql, bindings)
            defer { PQclear(result) }
            return Int(String(cString: PQcmdTuples(result))) ?? 0
        }
    }

    func executeScript(_ sql: String) throws(SQLError) {
        try retrying(sql) { () throws(SQLError) in
            lock.lock()
            defer { lock.unlock() }
            let c = try open(sql)
            let result = PQexec(c, sql)
            defer { PQclear(result) }
            try check(result, c, sql)
        }
    }

    func query(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> [SQLRow] {
        var rows: [SQLRow] = []
        try forEachRow(sql, bindings) { rows.append($0) }
        return rows
    }

    func forEachRow(_ sql: String, _ bindings: [SQLValue], _ body: (SQLRow) -> Void) throws(SQLError) {
        let result = try retrying(sql) { () throws(SQLError) -> OpaquePointer in try run(sql, bindings) }
        defer { PQclear(result) }
        let columns = PQnfields(result)
        let types = (0..<columns).map { PQftype(result, $0) }
        for r in 0..<PQntuples(result) {
            body(SQLRow(values: (0..<columns).map { Self.value(result, r, $0, type: types[Int($0)]) }))
        }
    }

    /// BEGIN … COMMIT; run again from the start when the connection was lost, or when the
    /// server chose it as a deadlock's victim or could not serialise it.
    func transaction<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T {
        try block("BEGIN", body)
    }

    /// A REPEATABLE READ transaction: every query sees the snapshot of its first.
    func snapshot<T>(_ body: () throws(SQLError) -> T) throws(SQLError) -> T {
        try block("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body, timed: false)
    }

    private func block<T>(_ begin: String, _ body: () throws(SQLError) -> T, timed: Bool = true) throws(SQLError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Self.now() + reconnectFor
        while true {
            let started = ContinuousClock.now
            do throws(SQLError) {
                inTransaction = true
                defer { inTransaction = false }
                try plain(begin)
                do throws(SQLError) {
                    let result = try body()
                    try plain("COMMIT")
                    if timed { onCommit?((ContinuousClock.now - started).seconds) }
                    return result
                } catch {
                    if !error.connectionLost { _ = try? plain("ROLLBACK") }
                    throw error
                }
            } catch {
                let again = error.connectionLost || error.state == "40P01" || error.state == "40001"
                guard again, Self.now() < deadline else { throw error }
                if error.connectionLost { try reconnect(until: deadline, error) }
            }
        }
    }

    // MARK: - Internals

    private func plain(_ sql: String) throws(SQLError) {
        let result = try run(sql, [])
        PQclear(result)
    }

    /// Runs `body`; outside a transaction, a lost connection is reconnected and `body` run again.
    private func retrying<T>(_ sql: String, _ body: () throws(SQLError) -> T) throws(SQLError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Self.now() + reconnectFor
        while true {
            do {
                return try body()
            } catch {
                guard error.connectionLost, !inTransaction, Self.now() < deadline else { throw error }
                try reconnect(until: deadline, error)
            }
        }
    }

    private func connect() throws(SQLError) {
        let c = withArrayOfCStrings(keywords) { k in
            withArrayOfCStrings(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let message = c.map { Self.message(PQerrorMessage($0)) } ?? "out of memory"
            if let c { PQfinish(c) }
            throw SQLError(code: 1, message: "cannot connect to \(target): \(message)", sql: "", connectionLost: true)
        }
        // Notices ("already exists, skipping") are not for the operator's terminal.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
        connection = c
    }

    private func reconnect(until deadline: Double, _ first: SQLError) throws(SQLError) {
        if let c = connection { PQfinish(c) }
        connection = nil
        var last = first
        while Self.now() < deadline {
            usleep(500_000)
            do {
                try connect()
                return
            } catch { last = error }
        }
        throw last
    }

    /// The connection; after a reconnect that gave up, a new attempt (the server may be back).
    private func open(_ sql: String) throws(SQLError) -> OpaquePointer {
        if connection == nil && !closed { try connect() }
        guard let c = connection else { throw SQLError(code: 21, message: "the connection to \(target) is closed", sql: sql) }
        return c
    }

    /// Runs one statement with its bindings; the caller clears the result.
    private func run(_ sql: String, _ bindings: [SQLValue]) throws(SQLError) -> OpaquePointer {
        lock.lock()
        defer { lock.unlock() }
        let c = try open(sql)
        let text = numbered(sql)
        var types: [UInt32] = []
        var formats: [Int32] = []
        var lengths: [Int32] = []
        var buffers: [Data?] = []
        for value in bindings {
            switch value {
            case .null: types.append(0); formats.append(0); lengths.append(0); buffers.append(nil)
            case .integer(let v): types.append(20); formats.append(0); lengths.append(0); buffers.append(Data("\(v)\0".utf8))
            case .text(let v): types.append(0); formats.append(0); lengths.append(0); buffers.append(Data((v + "\0").utf8))
            case .blob(let v): types.append(17); formats.append(1); lengths.append(Int32(v.count)); buffers.append(v.isEmpty ? Data([0]) : v)
            }
        }
        let result = Self.withPointers(buffers) { pointers in
            PQexecParams(c, text, Int32(bindings.count), types, pointers, lengths, formats, 0)
        }
        guard let result else { throw lost(c, sql) }
        do { try check(result, c, sql) } catch {
            PQclear(result)
            throw error
        }
        return result
    }

    private func check(_ result: OpaquePointer?, _ c: OpaquePointer, _ sql: String) throws(SQLError) {
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK { return }
        if PQstatus(c) != CONNECTION_OK { throw lost(c, sql) }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        var message = result.map { Self.message(PQresultErrorMessage($0)) } ?? ""
        if message.isEmpty { message = Self.message(PQerrorMessage(c)) }
        // 08…: connection exceptions; 57P01–57P03: the server shuts down or is starting up.
        let gone = state.hasPrefix("08") || state.hasPrefix("57P")
        throw SQLError(code: state.hasPrefix("23") ? SQLError.constraint : 1, message: message, sql: sql, state: state, connectionLost: gone)
    }

    private func lost(_ c: OpaquePointer, _ sql: String) -> SQLError {
        SQLError(code: 1, message: "lost the connection to \(target): \(Self.message(PQerrorMessage(c)))", sql: sql, connectionLost: true)
    }

    /// `?` → `$1, $2 …`, outside quotes.
    private func numbered(_ sql: String) -> String {
        if let done = placeholders[sql] { return done }
        var out = ""
        var n = 0
        var quote: Character?
        for ch in sql {
            if let q = quote {
                if ch == q { quote = nil }
                out.append(ch)
            } else if ch == "'" || ch == "\"" {
                quote = ch
                out.append(ch)
            } else if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        placeholders[sql] = out
        return out
    }

    private static func value(_ result: OpaquePointer, _ row: Int32, _ column: Int32, type: UInt32) -> SQLValue {
        if PQgetisnull(result, row, column) != 0 { return .null }
        guard let p = PQgetvalue(result, row, column) else { return .null }
        let n = Int(PQgetlength(result, row, column))
        let text = String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
        switch type {
        case 20, 21, 23, 26: return .integer(Int64(text) ?? 0)
        case 700, 701, 1700: return .integer(Int64(text) ?? Double(text).map { Int64($0) } ?? 0)
        case 16: return .integer(text == "t" ? 1 : 0)
        case 17: return .blob(hexBytes(text))
        default: return .text(text)
        }
    }

    /// bytea's text form: `\x` and two hex digits a byte.
    private static func hexBytes(_ text: String) -> Data {
        var out = Data()
        var utf8 = Array(text.utf8.dropFirst(2))
        out.reserveCapacity(utf8.count / 2)
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        var i = 0
        while i + 1 < utf8.count {
            out.append(nibble(utf8[i]) << 4 | nibble(utf8[i + 1]))
            i += 2
        }
        utf8 = []
        return out
    }

    private static func message(_ p: UnsafeMutablePointer<CChar>?) -> String {
        p.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    private static func withPointers<R>(_ buffers: [Data?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafePointer<CChar>?] = []
        func next(_ i: Int) -> R {
            if i == buffers.count { return body(pointers) }
            guard let b = buffers[i] else {
                pointers.append(nil)
                return next(i + 1)
            }
            return b.withUnsafeBytes { raw in
                pointers.append(raw.baseAddress?.assumingMemoryBound(to: CChar.self))
                return next(i + 1)
            }
        }
        return next(0)
    }
}

private func withArrayOfCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
