import Foundation
import Synchronization

/// A request to stop (SPEC §10), observed by what runs: once raised, no new file is claimed
/// and no new request starts; raised twice, the requests in flight are abandoned (their rows
/// stay in doubt in the ledger, as after a kill, and are looked up on the next run).
///
/// The process's own is raised by SIGINT/SIGTERM (`Shutdown`); tests raise theirs.
public final class StopSignal: Sendable {
    fileprivate let count = Atomic<Int>(0)

    public init() {}

    /// The one SIGINT/SIGTERM raise.
    public static let process = StopSignal()

    /// Raised once: no new file, no new request.
    public var requested: Bool { count.load(ordering: .relaxed) > 0 }
    /// Raised twice: stop without waiting for the answers in flight.
    public var now: Bool { count.load(ordering: .relaxed) > 1 }

    public func raise() { count.add(1, ordering: .relaxed) }
}

/// SIGINT/SIGTERM: raise `StopSignal.process`, say at once on stderr what will happen, and
/// wake the watcher's poll through a pipe — all of it async-signal-safe.
public enum Shutdown {
    static let announce = Atomic<Bool>(false)
    nonisolated(unsafe) static var wakeFD: (read: Int32, write: Int32) = (-1, -1)

    /// Installs the handlers once. `announce`: acknowledge each signal on stderr (commands
    /// that run jobs; the standalone sandbox stays quiet).
    public static func install(announce: Bool = true) {
        self.announce.store(announce, ordering: .relaxed)
        // Made now: nothing in a signal handler may run a lazy initialiser.
        _ = StopSignal.process
        if wakeFD.read < 0 {
            var fds: [Int32] = [0, 0]
            if pipe(&fds) == 0 {
                _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
                _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
                wakeFD = (fds[0], fds[1])
            }
        }
        let handler: @convention(c) (Int32) -> Void = { sig in
            let count = StopSignal.process.count.add(1, ordering: .relaxed).newValue
            var byte: UInt8 = 1
            _ = write(Shutdown.wakeFD.write, &byte, 1)
            guard Shutdown.announce.load(ordering: .relaxed) else { return }
            // Static text only: nothing in a signal handler may allocate.
            let line: StaticString = count > 1
                ? "\nsmsbatch: stopping now: requests in flight stay in doubt and are looked up on the next run\n"
                : sig == SIGINT ? "\nsmsbatch: stopping after the requests in flight; Ctrl-C again to stop now\n"
                : "\nsmsbatch: SIGTERM: stopping after the requests in flight; a second signal stops now\n"
            _ = write(2, line.utf8Start, line.utf8CodeUnitCount)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A peer that closes early must cost an error code, never the process.
        signal(SIGPIPE, SIG_IGN)
    }
}
