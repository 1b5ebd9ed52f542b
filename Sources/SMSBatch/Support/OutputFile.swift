import Foundation

/// A buffered output file written under a temporary name in its folder and renamed into
/// place by `commit()`, so a reader never sees half a file (SPEC §7). `discard()` removes
/// it instead (a file-level rejection writes no batch).
struct OutputFile: ~Copyable {
    let path: String
    let tempPath: String
    private let fd: Int32
    private var buffer = ByteBuffer(capacity: 1 << 18)
    private var closed = false

    init(path: String) throws(ReportError) {
        self.path = path
        let url = URL(fileURLWithPath: path)
        // A name of its own per writer: two processes rewriting one file (a webhook and a
        // resumed run) never write into each other's temporary file.
        tempPath = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp").path
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw ReportError(path: path, errno: errno) }
    }

    deinit {
        if !closed {
            Glibc.close(fd)
            unlink(tempPath)
        }
    }

    // MARK: - Writing CSV

    /// Appends one CSV field (quoted when it holds a comma, quote, CR or LF), no separator.
    @inline(__always)
    mutating func field(_ b: UnsafeBufferPointer<UInt8>) {
        if !OutputFile.needsQuotes(b) { buffer.append(b); return }
        buffer.append(0x22)
        var runStart = 0
        for i in 0..<b.count where b[i] == 0x22 {
            buffer.append(UnsafeBufferPointer(rebasing: b[runStart...i]))
            buffer.append(0x22)
            runStart = i + 1
        }
        buffer.append(UnsafeBufferPointer(rebasing: b[runStart...]))
        buffer.append(0x22)
    }

    /// Whether a field holds a comma, quote, CR or LF: eight bytes at a time (messages are
    /// the longest fields, and every batch row carries one).
    @inline(__always)
    static func needsQuotes(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = b.baseAddress else { return false }
        @inline(__always) func zeroByte(_ x: UInt64) -> UInt64 { (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080 }
        var i = 0
        while i + 8 <= b.count {
            let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            if zeroByte(w ^ 0x2C2C_2C2C_2C2C_2C2C) | zeroByte(w ^ 0x2222_2222_2222_2222)
                | zeroByte(w ^ 0x0A0A_0A0A_0A0A_0A0A) | zeroByte(w ^ 0x0D0D_0D0D_0D0D_0D0D) != 0 { return true }
            i += 8
        }
        while i < b.count {
            let c = base[i]
            if c == 0x2C || c == 0x22 || c == 0x0A || c == 0x0D { return true }
            i += 1
        }
        return false
    }

    mutating func field(_ s: String) {
        var s = s
        s.withUTF8 { field($0) }
    }

    /// A field known to need no quoting (codes, numbers, E.164 numbers).
    @inline(__always) mutating func plain(_ s: StaticString) { buffer.append(s) }
    @inline(__always) mutating func plain(_ b: UnsafeBufferPointer<UInt8>) { buffer.append(b) }
    @inline(__always) mutating func plain(_ a: [UInt8]) { a.withUnsafeBufferPointer { buffer.append($0) } }
    @inline(__always) mutating func number(_ v: Int) { buffer.appendDecimal(v) }
    /// An E.164 number, `+` and its digits.
    @inline(__always) mutating func phone(_ n: PhoneNumber) {
        buffer.append(UInt8(ascii: "+"))
        buffer.appendDecimal(Int(n.value))
    }
    @inline(__always) mutating func comma() { buffer.append(0x2C) }
    /// A fixed-width integer in little-endian byte order (binary files).
    @inline(__always) mutating func raw<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append($0) }
    }

    /// Ends a binary record: flushes when the buffer is full.
    mutating func endRecord() throws(ReportError) {
        if buffer.count >= 1 << 18 { try flush() }
    }

    mutating func endRow() throws(ReportError) {
        buffer.append(0x0A)
        if buffer.count >= 1 << 18 { try flush() }
    }

    mutating func write(_ s: String) throws(ReportError) {
        buffer.append(s)
        if buffer.count >= 1 << 18 { try flush() }
    }

    mutating func flush() throws(ReportError) {
        var off = 0
        while off < buffer.count {
            let n = Glibc.write(fd, buffer.base + off, buffer.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReportError(path: path, errno: errno)
            }
            off += n
        }
        buffer.removeAll()
    }

    /// Flushes, closes and renames the file into place.
    consuming func commit() throws(ReportError) {
        try close().publish()
    }

    /// Flushes and closes the file, leaving it under its temporary name until published.
    consuming func close() throws(ReportError) -> ClosedOutputFile {
        try flush()
        closed = true
        if Glibc.close(fd) != 0 { throw ReportError(path: path, errno: errno) }
        return ClosedOutputFile(path: path, tempPath: tempPath)
    }

    /// Removes the temporary file.
    consuming func discard() {
        closed = true
        Glibc.close(fd)
        unlink(tempPath)
    }
}

/// A complete output file still under its temporary name.
struct ClosedOutputFile {
    let path: String
    let tempPath: String

    func publish() throws(ReportError) {
        if rename(tempPath, path) != 0 { throw ReportError(path: path, errno: errno) }
    }

    func remove() { unlink(tempPath) }
}

/// An output file could not be written (disk full, permissions).
public struct ReportError: Diagnosable {
    public let path: String
    public let errno: Int32
    public var subject: String { path }
    public var problem: String { "cannot write: \(String(cString: strerror(errno)))" }
    public var exitStatus: ExitStatus { .ioError }
}

/// A small file replaced whole: readers see the old content or the new, never a part
/// (the metrics text file, which node_exporter's textfile collector may read at any time).
public enum WholeFile {
    public static func write(_ text: String, to path: String) throws(ReportError) {
        var file = try OutputFile(path: path)
        try file.write(text)
        try file.commit()
    }
}
