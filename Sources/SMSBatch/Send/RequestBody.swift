import Foundation

/// The provider's JSON, written and read by hand on the hot path: request bodies are
/// appended as bytes (no encoder per node).
enum RequestBody {
    /// `{"root":{sender,service,time},"nodes":[{to,custom,message,sender,template_id,entity_id}]}`
    /// for rows of one product and one time.
    static func sendJSON(_ rows: [QueuedRow], customs: [String]) -> Data {
        var out = [UInt8]()
        out.reserveCapacity(rows.reduce(64) { $0 + $1.message.count + 96 })
        let first = rows[0]
        out += Array(#"{"root":{"sender":"#.utf8)
        string(first.sender, into: &out)
        out += Array(#","service":"#.utf8)
        string(Array(first.product.utf8), into: &out)
        if first.scheduledAt != 0 {
            out += Array(#","time":"#.utf8)
            string(UTCTime.isoBytes(first.scheduledAt), into: &out)
        }
        out += Array(#"},"nodes":["#.utf8)
        for (i, r) in rows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(#"{"to":"+"#.utf8)
            out += Array(String(r.recipient.value).utf8)
            out += Array(#"","custom":"#.utf8)
            string(Array(customs[i].utf8), into: &out)
            out += Array(#","message":"#.utf8)
            string(r.message, into: &out)
            out += Array(#","sender":"#.utf8)
            string(r.sender, into: &out)
            if !r.templateId.isEmpty {
                out += Array(#","template_id":"#.utf8)
                string(r.templateId, into: &out)
            }
            if !r.entityId.isEmpty {
                out += Array(#","entity_id":"#.utf8)
                string(r.entityId, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}".utf8)
        return Data(out)
    }

    /// A JSON string of UTF-8 bytes (already validated), escaping quotes, backslashes and
    /// control characters.
    static func string(_ bytes: [UInt8], into out: inout [UInt8]) {
        out.append(0x22)
        for c in bytes {
            switch c {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20: out += Array(String(format: "\\u%04x", c).utf8)
            default: out.append(c)
            }
        }
        out.append(0x22)
    }

    /// customid → message id from a send answer (`data` a list, or `data.messages`).
    static func messageIDs(_ reply: HTTPReply) -> [String: String] {
        guard let json = reply.json else { return [:] }
        let list = (json["data"] as? [[String: Any]]) ?? ((json["data"] as? [String: Any])?["messages"] as? [[String: Any]]) ?? []
        var ids: [String: String] = [:]
        for m in list {
            if let c = m["customid"] as? String, let id = m["id"] { ids[c] = "\(id)" }
        }
        return ids
    }

    /// The request's group id from a send answer (`data.group_id`), nil when it gave none.
    static func groupID(_ reply: HTTPReply) -> String? {
        guard let data = reply.json?["data"] as? [String: Any], let group = data["group_id"] else { return nil }
        let text = "\(group)"
        return text.isEmpty ? nil : text
    }

    /// The nodes a 422 names: (position in the request's nodes, code, message).
    static func invalidNodes(_ reply: HTTPReply) -> [(Int, String, String)]? {
        guard let errors = reply.json?["errors"] as? [[String: Any]] else { return nil }
        return errors.compactMap { e in
            guard let node = e["node"] as? Int else { return nil }
            let field = (e["field"] as? String).map { "\($0): " } ?? ""
            return (node, (e["code"] as? String) ?? "VALIDATION_FAILED", field + ((e["message"] as? String) ?? "invalid"))
        }
    }
}
