import Foundation
import Synchronization

/// SIGINT/SIGTERM (SPEC §10): stop claiming, finish the requests in flight, record progress,
/// exit 0. A second signal stops at once: the requests in flight are abandoned (their rows
/// stay in doubt in the ledger, as after a kill, and are looked up on the next run).
///
/// The handler only counts the signal, says at once on stderr what will happen, and wakes
/// the watcher's poll through a pipe: all of it async-signal-safe.
public enum Shutdown {
    static let signals = Atomic<Int>(0)
    static let announce = Atomic<Bool>(false)
    nonisolated(unsafe) static var wakeFD: (read: Int32, write: Int32) = (-1, -1)

    /// A first signal arrived: no new file, no new request.
    public static var requested: Bool { signals.load(ordering: .relaxed) > 0 }
    /// A second signal arrived: stop without waiting for the answers in flight.
    public static var stopNow: Bool { signals.load(ordering: .relaxed) > 1 }

    /// Installs the handlers once. `announce`: acknowledge each signal on stderr (commands
    /// that run jobs; the standalone sandbox stays quiet).
    public static func install(announce: Bool = true) {
        self.announce.store(announce, ordering: .relaxed)
        if wakeFD.read < 0 {
            var fds: [Int32] = [0, 0]
            if pipe(&fds) == 0 {
                _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
                _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
                wakeFD = (fds[0], fds[1])
            }
        }
        let handler: @convention(c) (Int32) -> Void = { sig in
            let count = Shutdown.signals.add(1, ordering: .relaxed).newValue
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
