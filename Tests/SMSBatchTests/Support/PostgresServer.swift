import Foundation
@testable import SMSBatch

/// A real PostgreSQL server for the tests: `initdb` into a temporary folder and `pg_ctl` on a
/// free loopback port, started once per test process, stopped when it exits. Run as an
/// unprivileged user when the tests run as root (PostgreSQL refuses root, and CI is root).
/// Debian's `postgresql` package provides it (`make test` installs it).
final class PostgresServer: @unchecked Sendable {
    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    let port: UInt16
    /// The address it listens on and the network whose clients it lets in.
    let host: String
    private let network: String?
    let folder: String
    let bin: String
    private let user: String?
    private let databases = Locked(0)

    /// The server of this test process, or why there is none.
    static let shared: Result<PostgresServer, Unavailable> = {
        do {
            return .success(try startNew())
        } catch let error as Unavailable {
            return .failure(error)
        } catch {
            return .failure(Unavailable(description: "\(error)"))
        }
    }()
    private static let running = Locked<[PostgresServer]>([])
    private static let serial = Locked<UInt64>(0)
    private static let stopAtExit: Void = { atexit { PostgresServer.running.withLock { $0.forEach { $0.stop() } } } }()

    /// The server, or a thrown error saying why it could not start and where it comes from.
    static func start() throws -> PostgresServer { try shared.get() }

    /// A server of its own, for a test that stops and restarts it, or that reaches it on
    /// `host` (an address of this machine) from clients in `network` (CIDR) instead of
    /// loopback.
    static func startNew(host: String = "127.0.0.1", network: String? = nil) throws -> PostgresServer {
        _ = stopAtExit
        let server = try PostgresServer(host: host, network: network)
        running.withLock { $0.append(server) }
        return server
    }

    private init(host: String = "127.0.0.1", network: String? = nil) throws {
        (self.host, self.network) = (host, network)
        guard let bin = Self.binFolder() else {
            throw Unavailable(description: "no PostgreSQL server here (no /usr/lib/postgresql/*/bin/initdb): install Debian's postgresql (make test does)")
        }
        self.bin = bin
        user = getuid() == 0 ? Self.unprivilegedUser() : nil
        folder = NSTemporaryDirectory() + "smsbatch-pg-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        chmod(folder, 0o777)
        // Below the ephemeral range: restarted on the same port, no other socket takes it meanwhile.
        // Each server of the run its own seed: two started at once never pick the same port.
        port = try portOutsideEphemeralRange(seed: UInt64(getpid()) &* 0x9E37_79B9 &+ Self.serial.withLock { $0 += 1; return $0 })
        try run("initdb", ["-D", folder + "/data", "-U", "smsbatch", "--auth=trust", "-E", "UTF8", "--no-sync"], what: "initdb")
        if let network, let hba = FileHandle(forWritingAtPath: folder + "/data/pg_hba.conf") {
            hba.seekToEndOfFile()
            hba.write(Data("host all all \(network) trust\n".utf8))
            try? hba.close()
        }
        try start()
    }

    var url: String { url(database: "postgres") }

    func url(database: String) -> String { "postgres://smsbatch@\(host):\(port)/\(database)" }

    /// A new empty database (each test its own, so tests running together never meet).
    func createDatabase() throws -> String {
        let n = databases.withLock { $0 += 1; return $0 }
        let name = "t\(getpid())_\(n)"
        let admin = try PostgresDatabase(url: url, password: nil, reconnectFor: 10)
        defer { admin.close() }
        try admin.execute("CREATE DATABASE \(name)", [])
        return url(database: name)
    }

    func start() throws {
        try run("pg_ctl", ["-D", folder + "/data", "-l", folder + "/log", "-w", "-t", "60", "start", "-o",
                           "-p \(port) -k \(folder) -c listen_addresses=\(host) -c fsync=off -c max_connections=200"],
                what: "pg_ctl start")
    }

    /// Stops the server (fast shutdown: connections are cut, as in a restart).
    func stop() {
        try? run("pg_ctl", ["-D", folder + "/data", "-m", "fast", "-w", "stop"], what: "pg_ctl stop")
    }

    var log: String { (try? String(contentsOfFile: folder + "/log", encoding: .utf8)) ?? "" }

    /// Runs a PostgreSQL tool and waits for it. posix_spawn and waitpid, not Foundation's
    /// Process: `pg_ctl start` leaves the server running with whatever it inherited, and
    /// Process waits for its own pipe's end, which the server would then hold for ever.
    private func run(_ tool: String, _ args: [String], what: String) throws {
        let argv = (user.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [bin + "/" + tool] + args
        let output = folder + "/\(tool).out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        guard rc == 0 else { throw Unavailable(description: "\(what): cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw Unavailable(description: "\(what) failed (wait status \(status)): \(said) \(log)")
        }
    }

    private static func binFolder() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.reversed().map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// `postgres` (Debian's package makes it), else `nobody`.
    private static func unprivilegedUser() -> String {
        getpwnam("postgres") != nil ? "postgres" : "nobody"
    }
}
