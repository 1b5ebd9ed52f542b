import Foundation
import Synchronization
import Testing
@testable import SMSBatch
@testable import SMSBatchSandbox

// The HTTP client (libcurl's multi interface) against the real sandbox over loopback. No
// assertion depends on how long anything took: slow servers are slower (60 s) than any test
// waits, and waits are only upper bounds for "eventually".

private func client(_ provider: TestProvider, auth: AuthPlacement = .header, timeout: Int = 30) -> ProviderClient {
    ProviderClient(endpoint: provider.server.endpoint, token: provider.token, auth: auth, timeout: timeout, concurrency: 2)
}

private func oneNode(_ custom: String) -> Data {
    Data(sendBody([["to": "919876543210", "custom": custom]]).utf8)
}

private func failure(_ result: Result<HTTPReply, TransportFailure>) -> TransportFailure? {
    if case .failure(let f) = result { return f }
    return nil
}

/// Waits (up to a minute) until the sandbox has received `count` requests.
private func waitForArrivals(_ provider: TestProvider, _ count: Int) async throws {
    for _ in 0..<600 where provider.server.arrivals.count < count {
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    try #require(provider.server.arrivals.count >= count)
}

/// A port on 127.0.0.1 that nothing listens on: a sandbox's, after it stopped.
func closedPort() throws -> UInt16 {
    let server = SandboxServer(options: SandboxOptions(token: "closed"))
    let port = try server.start()
    server.stop()
    return port
}

@Suite("ProviderClient: libcurl over loopback to the sandbox")
struct ProviderClientTests {
    @Test("a GET and a POST round trip, with the Bearer header")
    func roundTrip() async throws {
        let provider = try TestProvider()
        let c = client(provider)
        let me = try await c.get("auth/me").get()
        #expect(me.status == 200)
        #expect(me.json != nil)
        let sent = try await c.postJSON("sms/send/json", body: oneNode("rt-1")).get()
        #expect(sent.status == 200)
        #expect(sent.bodySaysOK)
        #expect(RequestBody.messageIDs(sent)["rt-1"] != nil)
        let status = try await c.get("sms/status", query: [("cid", "rt-1")]).get()
        #expect(status.status == 200)
        #expect(String(decoding: status.body, as: UTF8.self).contains("rt-1"))
        #expect(provider.server.accepted.count == 1)
    }

    @Test("access_token in the query string works for GET and POST")
    func queryAuth() async throws {
        let provider = try TestProvider()
        let c = client(provider, auth: .query)
        #expect(try await c.get("auth/me").get().status == 200)
        #expect(try await c.get("sms/status", query: [("cid", "q-1")]).get().status == 200)
        #expect(try await c.postJSON("sms/send/json", body: oneNode("q-1")).get().status == 200)
        #expect(provider.server.accepted.customs == ["q-1"])
    }

    @Test("a wrong token is an answer (401 with the provider's message), not a failure")
    func wrongToken() async throws {
        let provider = try TestProvider()
        let c = ProviderClient(endpoint: provider.server.endpoint, token: "wrong", auth: .header, timeout: 30, concurrency: 1)
        let reply = try await c.get("auth/me").get()
        #expect(reply.status == 401)
        #expect(reply.errorCodeAndMessage.0 == "UNAUTHORIZED")
    }

    @Test("a 429 carries its Retry-After")
    func retryAfter() async throws {
        // The rate window on a clock that stands still: the second request is always inside
        // the first one's minute, however slow the machine.
        let clock = VirtualClock()
        let provider = try TestProvider { $0.rateLimit = 1; $0.clock = clock }
        let c = client(provider)
        #expect(try await c.get("auth/me").get().status == 200)
        let limited = try await c.get("auth/me").get()
        #expect(limited.status == 429)
        #expect((limited.retryAfter ?? 0) >= 1)
        #expect(try await c.get("auth/me").get().retryAfter != nil)
    }

    @Test("connection refused: notConnected (not in doubt), naming host and port, never the token", arguments: [AuthPlacement.header, .query])
    func refused(auth: AuthPlacement) async throws {
        let port = try closedPort()
        let token = "tok-secret-" + UUID().uuidString
        let c = ProviderClient(endpoint: "http://127.0.0.1:\(port)/api/v2/", token: token, auth: auth, timeout: 30, concurrency: 1)
        for result in [await c.get("sms/status", query: [("cid", "x")]), await c.postJSON("sms/send/json", body: oneNode("x"))] {
            let f = try #require(failure(result))
            #expect(f.kind == .notConnected)
            #expect(!f.inDoubt)
            #expect(f.message == "cannot connect to 127.0.0.1 port \(port): connection refused")
            #expect(!f.message.contains(token))
            #expect(!f.message.contains("?"))
        }
    }

    @Test("an unknown host: notConnected, naming the host")
    func unresolvable() async throws {
        // A long timeout: a slow resolver must still end in its own failure, not ours.
        let c = ProviderClient(endpoint: "http://no-such-host.invalid:8080/api/v2/", token: "t", auth: .query, timeout: 120, concurrency: 1)
        let f = try #require(failure(await c.get("auth/me")))
        #expect(f.kind == .notConnected)
        #expect(f.message.hasPrefix("cannot connect to no-such-host.invalid port 8080: "))
        #expect(!f.message.contains("access_token"))
    }

    @Test("an answer slower than the client's timeout: timeout, in doubt")
    func timeout() async throws {
        let provider = try TestProvider { $0.latencyMs = 60_000 }
        let c = client(provider, auth: .query, timeout: 1)
        let f = try #require(failure(await c.postJSON("sms/send/json", body: oneNode("slow"))))
        #expect(f.kind == .timeout)
        #expect(f.inDoubt)
        #expect(f.message.contains("127.0.0.1 port \(provider.server.port)"))
        #expect(!f.message.contains(provider.token))
    }

    @Test("a send accepted and then dropped without an answer: connectionLost, in doubt, and libcurl did not send it again")
    func dropped() async throws {
        let provider = try TestProvider { $0.dropRate = 1 }
        let c = client(provider)
        // A GET first, so a keep-alive connection exists that the POST must not reuse.
        #expect(try await c.get("auth/me").get().status == 200)
        let f = try #require(failure(await c.postJSON("sms/send/json", body: oneNode("drop-1"))))
        #expect(f.kind == .connectionLost)
        #expect(f.inDoubt)
        let accepted = provider.server.accepted
        #expect(accepted.count == 1)
        #expect(accepted.repeats == 0)
    }

    @Test("abortInFlight ends a request the server has not answered yet with .aborted; a request after it goes out as usual")
    func abort() async throws {
        let provider = try TestProvider { $0.latencyMs = 60_000 }
        let c = client(provider, timeout: 600)
        async let first = c.postJSON("sms/send/json", body: oneNode("abort-1"))
        try await waitForArrivals(provider, 1)
        c.abortInFlight()
        let f = try #require(failure(await first))
        #expect(f.kind == .aborted)
        #expect(f.inDoubt)
        // The abort is over: the next request reaches the server and waits for its answer.
        async let second = c.get("auth/me")
        try await waitForArrivals(provider, 2)
        c.abortInFlight()
        #expect(try #require(failure(await second)).kind == .aborted)
    }

    @Test("abortInFlight ends every transfer in flight at once")
    func abortSeveral() async throws {
        let provider = try TestProvider { $0.latencyMs = 60_000 }
        let c = client(provider, timeout: 600)
        async let a = c.postJSON("sms/send/json", body: oneNode("a"))
        async let b = c.postJSON("sms/send/json", body: oneNode("b"))
        async let g = c.get("sms/status", query: [("cid", "a")])
        try await waitForArrivals(provider, 3)
        c.abortInFlight()
        let kinds = [failure(await a)?.kind, failure(await b)?.kind, failure(await g)?.kind]
        #expect(kinds == [.aborted, .aborted, .aborted])
    }

    @Test("each POST opens a connection of its own; GETs reuse theirs")
    func connections() async throws {
        let provider = try TestProvider()
        let c = client(provider)
        for _ in 0..<3 { #expect(try await c.get("auth/me").get().status == 200) }
        #expect(c.connectionsOpened == 1)
        for i in 0..<3 { #expect(try await c.postJSON("sms/send/json", body: oneNode("conn-\(i)")).get().status == 200) }
        #expect(c.connectionsOpened == 4)
        #expect(try await c.get("auth/me").get().status == 200)
        #expect(c.connectionsOpened == 4)
    }

    @Test("many concurrent requests on one client all complete, and the client ends cleanly")
    func concurrent() async throws {
        let provider = try TestProvider { $0.rateLimit = 0 }
        var c: ProviderClient? = client(provider)
        let statuses = await withTaskGroup(of: Int.self) { group in
            for i in 0..<40 {
                group.addTask { [c] in
                    let r = i % 2 == 0 ? await c!.get("auth/me") : await c!.postJSON("sms/send/json", body: oneNode("many-\(i)"))
                    return (try? r.get().status) ?? -1
                }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.count == 40)
        #expect(statuses.allSatisfy { $0 == 200 })
        #expect(provider.server.accepted.count == 20)
        c = nil  // deinit stops the loop thread and frees the handles
        #expect(c == nil)
    }
}
