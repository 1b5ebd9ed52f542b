import Foundation

/// An exclusive `flock` on a lock file, held until released or the process dies (so a
/// crash never leaves a stale lock behind).
final class FileLock: @unchecked Sendable {
    // @unchecked: `fd` is set once and only closed by `release()`/deinit of the one owner.
    private var fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { release() }

    /// Releases the lock now rather than when the last reference goes.
    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Takes the lock, waiting without blocking a thread of the cooperative pool (another
    /// task in this process may be the holder).
    static func exclusive(_ path: String) async -> FileLock? {
        while true {
            if let lock = exclusive(path, wait: false) { return lock }
            let folder = parentDirectory(of: path)
            if !folder.isEmpty && !FileManager.default.fileExists(atPath: folder) { return nil }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    /// Takes the lock; with `wait: false`, nil when another process holds it.
    static func exclusive(_ path: String, wait: Bool) -> FileLock? {
        let folder = parentDirectory(of: path)
        if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
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

/// The folder part of a path ("" for a bare name), without NSString's
/// `deletingLastPathComponent`, which traps on some one-character relative paths on Linux.
func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "" }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}
