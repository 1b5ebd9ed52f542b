import Foundation

/// An exclusive `flock` on a lock file, held until released or the process dies (so a
/// crash never leaves a stale lock behind).
final class FileLock: Sendable {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// Takes the lock; with `wait: false`, nil when another process holds it.
    static func exclusive(_ path: String, wait: Bool) -> FileLock? {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { return nil }
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            close(fd)
            return nil
        }
        return FileLock(fd: fd)
    }
}
