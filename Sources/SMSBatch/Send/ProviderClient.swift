import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An HTTP answer from the provider.
struct HTTPReply: Sendable {
    let status: Int
    let retryAfter: Double?
    let body: Data

    /// The body as a JSON object, nil when it is not one (an HTML login page, say).
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }

    /// SPEC §8: `status` may be the integer 200 or the string "OK".
    var bodySaysOK: Bool {
        guard let s = json?["status"] else { return (200..<300).contains(status) }
        if let i = s as? Int { return i == 200 }
        if let t = s as? String { return t.uppercased() == "OK" || t == "200" || t.lowercased() == "success" }
        return false
    }

    /// The provider's `code` and `message` from an error body.
    var errorCodeAndMessage: (String, String) {
        let j = json
        let code = (j?["code"]).map { "\($0)" } ?? "HTTP_\(status)"
        let message = (j?["message"] as? String) ?? HTTPURLResponse.localizedString(forStatusCode: status)
        return (code, message)
    }
}

/// Why no answer came back. `inDoubt` failures may have reached the provider.
struct TransportFailure: Error, Sendable {
    enum Kind: Sendable { case timeout, connectionLost, notConnected }
    let kind: Kind
    let message: String
    var inDoubt: Bool { kind != .notConnected }
}

/// Talks HTTP to the provider's REST API v2 through URLSession (FoundationNetworking on
/// Linux: no extra build time, HTTPS from the system's libcurl). The token is added to each
/// request and never appears in an error message: messages are built from status codes and
/// error kinds, never from URLs.
final class ProviderClient: Sendable {
    private let base: URL
    private let token: String
    private let auth: AuthPlacement
    /// Keep-alive connections for idempotent GETs.
    private let session: URLSession
    /// Sends go on a fresh connection each (`Connection: close`): libcurl, under URLSession,
    /// silently re-sends a POST when a reused connection closes without an answer — a
    /// double send the sender could never see. On a connection used once, a drop surfaces
    /// as an error, and the sender looks the rows up before sending again.
    private let sendSession: URLSession

    init(endpoint: String, token: String, auth: AuthPlacement, timeout: Int, concurrency: Int) {
        base = URL(string: endpoint)!
        self.token = token
        self.auth = auth
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = TimeInterval(timeout)
        c.httpMaximumConnectionsPerHost = max(concurrency, 1)
        c.httpShouldUsePipelining = false
        c.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: c)
        sendSession = URLSession(configuration: c)
    }

    deinit {
        session.invalidateAndCancel()
        sendSession.invalidateAndCancel()
    }

    private func request(_ path: String, query: [(String, String)], method: String) -> URLRequest {
        var components = URLComponents(url: base.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        var items = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        if auth == .query { items.append(URLQueryItem(name: "access_token", value: token)) }
        components.queryItems = items.isEmpty ? nil : items
        var r = URLRequest(url: components.url!)
        r.httpMethod = method
        r.setValue("application/json", forHTTPHeaderField: "Accept")
        if auth == .header { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return r
    }

    func get(_ path: String, query: [(String, String)] = []) async -> Result<HTTPReply, TransportFailure> {
        await perform(request(path, query: query, method: "GET"), on: session)
    }

    func postJSON(_ path: String, body: Data) async -> Result<HTTPReply, TransportFailure> {
        var r = request(path, query: [], method: "POST")
        r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        r.setValue("close", forHTTPHeaderField: "Connection")
        r.httpBody = body
        return await perform(r, on: sendSession)
    }

    private func perform(_ request: URLRequest, on session: URLSession) async -> Result<HTTPReply, TransportFailure> {
        await withCheckedContinuation { (done: CheckedContinuation<Result<HTTPReply, TransportFailure>, Never>) in
            let task = session.dataTask(with: request) { data, response, error in
                if let http = response as? HTTPURLResponse, error == nil {
                    let retry = (http.value(forHTTPHeaderField: "Retry-After")).flatMap(Double.init)
                    done.resume(returning: .success(HTTPReply(status: http.statusCode, retryAfter: retry, body: data ?? Data())))
                    return
                }
                done.resume(returning: .failure(ProviderClient.classify(error)))
            }
            task.resume()
        }
    }

    private static func classify(_ error: Error?) -> TransportFailure {
        guard let e = error as? URLError else {
            return TransportFailure(kind: .connectionLost, message: "no HTTP answer")
        }
        switch e.code {
        case .timedOut: return TransportFailure(kind: .timeout, message: "timed out")
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet:
            return TransportFailure(kind: .notConnected, message: "cannot connect to the provider")
        default: return TransportFailure(kind: .connectionLost, message: "connection lost before an answer (URLError \(e.code.rawValue))")
        }
    }
}
