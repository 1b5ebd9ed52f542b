import Foundation

/// Finds files in inbox/ that are ready to claim (SPEC §10): a file is claimed once it has
/// been closed after writing (or renamed in) **and** its size and mtime have then not
/// changed for `watch.settle`. Closed means nobody has it open for writing (a read lease is
/// granted), or, where leases are not supported, that inotify reported the close or rename.
/// A writer that closes and reopens the file (an upload in pieces) restarts the clock with
/// every close. Without inotify (some network filesystems), a periodic rescan does the same
/// on size and mtime.
final class InboxWatcher {
    private let spool: Spool
    private let settle: Double
    /// Monotonic seconds; injected by tests.
    private let clock: () -> Double
    private var inotifyFD: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Names reported closed after writing or renamed in since they were last claimed.
    private var closed = Set<String>()
    /// Last seen (size, mtime) per name and since when nothing about it changed.
    private var seen: [String: (Spool.Candidate, Double)] = [:]
    private var firstScan = true

    init(spool: Spool, settle: Double, inotify: Bool = true,
         clock: @escaping () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        self.spool = spool
        self.settle = settle
        self.clock = clock
        let fd = inotify ? inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) : -1
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
        if timeout > 0 { _ = poll(&fds, nfds_t(fds.count), Int32(timeout * 1000)) }
        let now = clock()
        // A close or rename restarts the file's clock, even when size and mtime look the same.
        let (events, overflowed) = readEvents()
        for name in events {
            closed.insert(name)
            if let (c, _) = seen[name] { seen[name] = (c, now) }
        }
        var names: [String] = []
        var present = Set<String>()
        for c in spool.candidates() {
            present.insert(c.name)
            // Events were lost: every file counts as closed once it settles.
            if firstScan || overflowed { closed.insert(c.name) }
            guard let (previous, since) = seen[c.name], previous == c else {
                // Written again with no close seen since: open again, until it is closed.
                if seen[c.name] != nil && !events.contains(c.name) { closed.remove(c.name) }
                seen[c.name] = (c, now)
                continue
            }
            guard now - since >= settle else { continue }
            // Closed: nobody has it open for writing (the lease says so), or, where leases
            // are not supported, inotify saw it closed or renamed in — or nothing has changed
            // it for a long while (a file written from another NFS client sends no event).
            switch Spool.hasWriter(spool.path("inbox", c.name)) {
            case false?: names.append(c.name)
            case nil where !usesInotify || closed.contains(c.name) || now - since >= quiet: names.append(c.name)
            default: break
            }
        }
        firstScan = false
        seen = seen.filter { present.contains($0.key) }
        closed = closed.filter { present.contains($0) }
        for n in names { closed.remove(n); seen[n] = nil }
        return names
    }

    /// How long a file must stay unchanged to count as closed without any event, where
    /// leases cannot tell.
    private var quiet: Double { max(60, 10 * settle) }

    /// Names that inotify reported closed after writing or renamed in, and whether the
    /// kernel's event queue overflowed (events were lost).
    private func readEvents() -> (names: Set<String>, overflowed: Bool) {
        guard inotifyFD >= 0 else { return ([], false) }
        var names = Set<String>()
        var overflowed = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            if n <= 0 { return (names, overflowed) }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + 16 <= n {
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let len = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = raw[(offset + 16)..<(offset + 16 + len)].prefix { $0 != 0 }
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflowed = true }
                    if mask & (UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO)) != 0 && !name.isEmpty && !Spool.isIgnored(name) {
                        names.insert(name)
                    }
                    offset += 16 + len
                }
            }
        }
    }
}
