import Foundation

/// Another drain or watch holds the spool (exit 75), or the spool cannot be used.
public enum SpoolError: Diagnosable {
    case busy(String)
    case unusable(String, String)

    public var subject: String {
        switch self {
        case .busy(let root): root
        case .unusable(let path, _): path
        }
    }

    public var problem: String {
        switch self {
        case .busy: "another smsbatch drain or watch is using this spool; try later"
        case .unusable(_, let why): why
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .busy: .tryLater
        case .unusable: .cannotCreate
        }
    }
}

/// The watched folder of SPEC §10: `inbox/ processing/ done/ failed/ outbox/` under
/// `watch.root`. Claiming is an atomic rename from inbox/ into processing/, so two watchers
/// never take the same file; a file being processed is held with `flock`, so a file left in
/// processing/ by a dead process is recognised and resumed.
public final class Spool: Sendable {
    public let root: String
    public var inbox: String { path("inbox") }
    public var processing: String { path("processing") }
    public var done: String { path("done") }
    public var failed: String { path("failed") }
    public var outbox: String { path("outbox") }

    public init(root: String) throws(SpoolError) {
        self.root = root
        for dir in ["inbox", "processing", "done", "failed", "outbox"] {
            do {
                try FileManager.default.createDirectory(atPath: (root as NSString).appendingPathComponent(dir), withIntermediateDirectories: true)
            } catch { throw .unusable(root, "cannot create the spool folders: \(error.localizedDescription)") }
        }
    }

    func path(_ dir: String, _ name: String? = nil) -> String {
        let d = (root as NSString).appendingPathComponent(dir)
        return name.map { (d as NSString).appendingPathComponent($0) } ?? d
    }

    // MARK: - Locks

    /// A held lock; released when closed or when the process dies.
    public final class Lock: Sendable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// drain takes the spool exclusively, watch shared (several watchers may share an
    /// inbox); either fails at once with `.busy` when the other kind holds it.
    public func lock(exclusive: Bool) throws(SpoolError) -> Lock {
        let fd = open(path(".lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw .unusable(path(".lock"), String(cString: strerror(errno))) }
        if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            close(fd)
            throw .busy(root)
        }
        return Lock(fd: fd)
    }

    /// Holds a file in processing/ for as long as the returned lock lives; nil when another
    /// process holds it.
    func hold(_ file: String) -> Lock? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 { close(fd); return nil }
        return Lock(fd: fd)
    }

    // MARK: - Inbox

    /// SPEC §10: names starting with `.` or ending in `.part`, `.tmp`, `.crdownload` or `~`.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix(".crdownload")
            || name.hasSuffix("~")
    }

    struct Candidate: Equatable {
        let name: String
        let size: Int64
        let mtime: Double
    }

    /// Regular files in inbox/ that are not ignored, oldest first.
    func candidates() -> [Candidate] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []
        var out: [Candidate] = []
        for name in names where !Spool.isIgnored(name) {
            var st = stat()
            guard stat(path("inbox", name), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            out.append(Candidate(name: name, size: Int64(st.st_size),
                                 mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9))
        }
        return out.sorted { ($0.mtime, $0.name) < ($1.mtime, $1.name) }
    }

    /// Whether some process still has the file open for writing: a read lease is granted
    /// only when nobody does. Where leases are not supported, nil.
    static func hasWriter(_ file: String) -> Bool? {
        // A writer opening the file while the lease is held makes the kernel send SIGIO,
        // whose default action ends the process: nothing here wants that signal.
        _ = ignoreSIGIO
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { return nil }
        defer { close(fd) }
        if fcntl(fd, Spool.fSetLease, F_RDLCK) == 0 {
            _ = fcntl(fd, Spool.fSetLease, F_UNLCK)
            return false
        }
        return errno == EAGAIN || errno == EBUSY ? true : nil
    }

    private static let ignoreSIGIO: Void = { signal(SIGIO, SIG_IGN) }()

    /// Linux's F_SETLEASE (F_LINUX_SPECIFIC_BASE + 0); Glibc exports it only under _GNU_SOURCE.
    private static let fSetLease: Int32 = 1024

    /// Moves a file from inbox/ into processing/; nil when another process took it first
    /// (or a file of that name is still being processed).
    func claim(_ name: String) -> String? {
        let target = path("processing", name)
        if FileManager.default.fileExists(atPath: target) { return nil }
        // renameat2(RENAME_NOREPLACE) would close the gap between the check and the rename;
        // a same-named file still in processing/ is rare and the rename keeps whichever came last.
        if rename(path("inbox", name), target) != 0 { return nil }
        return target
    }

    /// Files in processing/ that no live process holds: left by a crash, to resume.
    func orphans() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: processing)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Moves a processed file to done/ or, with the reason beside it, to failed/, and
    /// returns where it went. Each file in failed/ has its own `<name>.reason.json`: a
    /// second `x.csv` becomes `x.csv.1` beside `x.csv.1.reason.json`.
    @discardableResult
    func finish(_ processingPath: String, failedReason: JSONValue?) -> String {
        let name = (processingPath as NSString).lastPathComponent
        guard let failedReason else {
            let target = uniqueTarget("done", name)
            rename(processingPath, target)
            return target
        }
        let target = uniqueTarget("failed", name)
        let finalName = (target as NSString).lastPathComponent
        let tmp = path("failed", "." + finalName + ".reason.json.tmp")
        _ = FileManager.default.createFile(atPath: tmp, contents: Data((failedReason.rendered(indent: 2) + "\n").utf8))
        rename(tmp, target + ".reason.json")
        rename(processingPath, target)
        return target
    }

    /// done/ and failed/ keep every file: a second `x.csv` becomes `x.csv.1`.
    private func uniqueTarget(_ dir: String, _ name: String) -> String {
        var candidate = path(dir, name)
        var n = 1
        while FileManager.default.fileExists(atPath: candidate) || FileManager.default.fileExists(atPath: candidate + ".reason.json") {
            candidate = path(dir, "\(name).\(n)")
            n += 1
        }
        return candidate
    }
}
