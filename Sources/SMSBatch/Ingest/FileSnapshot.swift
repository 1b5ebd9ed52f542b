import Foundation

/// A file's size and modification time, to see whether it changed since it was taken.
struct FileSnapshot: Equatable {
    let size: Int64
    let mtime: timespec

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        size = Int64(st.st_size)
        mtime = st.st_mtim
    }

    static func == (a: FileSnapshot, b: FileSnapshot) -> Bool {
        a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
    }

    /// Why the file at `path` is no longer what was taken, or nil when it is unchanged.
    func change(path: String) -> String? {
        guard let now = FileSnapshot(path: path) else { return "the file disappeared while it was being read" }
        guard now != self else { return nil }
        return "the file changed after it was taken (\(size) bytes, now \(now.size)): it was still being written; "
            + "nothing was sent. Upload under a .part name and rename it when complete"
    }
}
