import Foundation
import Synchronization

/// SIGINT/SIGTERM (SPEC §10): stop claiming, finish the request in flight, record progress,
/// exit 0. The handler only sets a flag and wakes the watcher's poll through a pipe.
public enum Shutdown {
    static let flag = Atomic<Bool>(false)
    nonisolated(unsafe) static var wakeFD: (read: Int32, write: Int32) = (-1, -1)

    public static var requested: Bool { flag.load(ordering: .relaxed) }

    /// Installs the handlers once.
    public static func install() {
        if wakeFD.read < 0 {
            var fds: [Int32] = [0, 0]
            if pipe(&fds) == 0 {
                _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
                _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
                wakeFD = (fds[0], fds[1])
            }
        }
        let handler: @convention(c) (Int32) -> Void = { _ in
            Shutdown.flag.store(true, ordering: .relaxed)
            var byte: UInt8 = 1
            _ = write(Shutdown.wakeFD.write, &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A peer that closes early must cost an error code, never the process.
        signal(SIGPIPE, SIG_IGN)
    }
}
