import Foundation

/// Finds files in inbox/ that are ready to claim (SPEC §10): at once when inotify reports
/// them closed after writing (and nobody still has them open for writing) or renamed in;
/// otherwise, by a periodic rescan, once their size and mtime have not changed for
/// `watch.settle` — which also finds files that arrived while no watcher ran, and works on
/// filesystems without inotify.
final class InboxWatcher {
    private let spool: Spool
    private let settle: Double
    private var inotifyFD: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Names inotify reported complete, waiting to be claimed.
    private var signalled = Set<String>()
    /// Last seen (size, mtime) per name and since when it has not changed.
    private var seen: [String: (Spool.Candidate, Double)] = [:]

    init(spool: Spool, settle: Double) {
        self.spool = spool
        self.settle = settle
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd >= 0 {
            if inotify_add_watch(fd, spool.inbox, UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)) >= 0 {
                inotifyFD = fd
            } else {
                close(fd)
            }
        }
    }

    deinit { if inotifyFD >= 0 { close(inotifyFD) } }

    var usesInotify: Bool { inotifyFD >= 0 }

    /// Waits up to `timeout` seconds (less when a shutdown is requested) and returns the
    /// names ready to claim, oldest first.
    func ready(timeout: Double) -> [String] {
        var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: Shutdown.wakeFD.read, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, nfds_t(fds.count), Int32(timeout * 1000))
        readEvents()
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        var names: [String] = []
        var present = Set<String>()
        for c in spool.candidates() {
            present.insert(c.name)
            if let (previous, since) = seen[c.name], previous == c {
                let settled = now - since >= settle
                let closed = signalled.contains(c.name)
                if (settled || closed) && Spool.hasWriter(spool.path("inbox", c.name)) != true { names.append(c.name) }
            } else {
                seen[c.name] = (c, now)
                // Reported closed (or renamed in) and nobody writing: no need to wait.
                if signalled.contains(c.name) && Spool.hasWriter(spool.path("inbox", c.name)) == false { names.append(c.name) }
            }
        }
        seen = seen.filter { present.contains($0.key) }
        signalled = signalled.filter { present.contains($0) }
        for n in names { signalled.remove(n); seen[n] = nil }
        return names
    }

    private func readEvents() {
        guard inotifyFD >= 0 else { return }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + 16 <= n {
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = raw[(offset + 16)..<(offset + 16 + len)].prefix { $0 != 0 }
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    if mask & (UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)) != 0 && !name.isEmpty && !Spool.isIgnored(name) {
                        signalled.insert(name)
                    }
                    offset += 16 + len
                }
            }
        }
    }
}
