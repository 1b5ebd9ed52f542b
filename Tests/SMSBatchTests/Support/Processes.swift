import Foundation

/// A smsbatch process running in the background, its output going to files.
final class Background {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    /// `netns`: run it inside that network namespace (`ip netns exec`, which execs smsbatch
    /// in its own place, so the process is smsbatch itself).
    init(_ args: [String], cwd: String, env: [String: String] = [:], netns: String? = nil) throws {
        let id = UUID().uuidString
        stdoutPath = NSTemporaryDirectory() + "smsbatch-bg-out-" + id
        stderrPath = NSTemporaryDirectory() + "smsbatch-bg-err-" + id
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        if let netns {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", netns, smsbatchBinary] + args
        } else {
            process.executableURL = URL(fileURLWithPath: smsbatchBinary)
            process.arguments = args
        }
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the process to end; nil when it is still running after `timeout` seconds.
    func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }
}

/// Polls `condition` every 50 ms for up to `timeout` seconds.
func eventually(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

/// `eventually` for async tests: it polls with `Task.sleep`, so the waiting test gives its
/// thread back while it waits. Swift's cooperative pool has one thread per core (2 on CI):
/// a test blocked in `usleep` next to another blocked test starves every task of the run,
/// the very task it waits for included (a push-storm test saw nothing sent in 120 s).
func waitUntil(timeout: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return await condition()
}

/// A standalone `smsbatch sandbox` process on a free port.
final class SandboxProcess {
    let background: Background
    let endpoint: String
    let token: String

    init(cwd: String, _ flags: [String] = []) throws {
        let token = "sb-" + UUID().uuidString
        let background = try Background(["sandbox", "--port", "0", "--token", token] + flags, cwd: cwd)
        self.token = token
        self.background = background
        var found: String?
        _ = eventually(timeout: 10) {
            let out = background.stdout
            if let r = out.range(of: "http://127.0.0.1:"), let end = out[r.lowerBound...].firstIndex(of: "\n") {
                found = String(out[r.lowerBound..<end])
            }
            return found != nil
        }
        guard let found else { throw SandboxStartError(stderr: background.stderr) }
        endpoint = found
    }

    struct SandboxStartError: Error { let stderr: String }

    /// `GET sandbox/accepted`: (count, repeats, customs).
    func accepted() throws -> (count: Int, repeats: Int, customs: [String]) {
        var request = URLRequest(url: URL(string: endpoint + "sandbox/accepted")!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let data = try syncGet(request)
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return (json["count"] as? Int ?? -1, json["repeats"] as? Int ?? -1, json["customs"] as? [String] ?? [])
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

private final class Box: @unchecked Sendable {
    // @unchecked: written once by the completion handler before the semaphore is signalled.
    var data: Data?
    var error: Error?
}

/// A blocking GET, for test code outside async contexts.
func syncGet(_ request: URLRequest) throws -> Data {
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    URLSession.shared.dataTask(with: request) { data, _, error in
        box.data = data
        box.error = error
        done.signal()
    }.resume()
    if done.wait(timeout: .now() + 10) == .timedOut { throw URLError(.timedOut) }
    if let e = box.error { throw e }
    return box.data ?? Data()
}
