import Foundation
internal import CXML2

/// The XML of a spreadsheet part is damaged (or no XML at all): where and what.
struct XMLStreamError: Error {
    let message: String
}

/// Pulls the nodes of one XML document, streamed from `source` (an archive entry's blocks),
/// through libxml2's xmlTextReader: memory stays that of the current node, whatever the size
/// of the document. No entity is substituted, nothing is fetched from the network, and
/// libxml2 reports nothing on stderr: its first error ends the stream with a message.
/// Names are compared as pointers into the reader's dictionary (`name(_:)`), not as strings.
/// Not Sendable: one reader, one thread.
final class XMLStream {
    /// The next block of the document; nil at its end.
    typealias Source = () throws(ArchiveError) -> UnsafeRawBufferPointer?

    private final class Input {
        let source: Source
        var block = UnsafeRawBufferPointer(start: nil, count: 0)
        var error: ArchiveError?
        var firstError: String?
        init(source: @escaping Source) { self.source = source }
    }

    private let reader: OpaquePointer
    private let input: Input

    enum Node: Equatable { case element, endElement, text, other }

    private static let initialised: Bool = { xmlInitParser(); return true }()

    init(source: @escaping Source) {
        _ = XMLStream.initialised
        input = Input(source: source)
        let context = Unmanaged.passUnretained(input).toOpaque()
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        reader = xmlReaderForIO({ context, buffer, length in
            let input = Unmanaged<XMLStream.Input>.fromOpaque(context!).takeUnretainedValue()
            do {
                while input.block.isEmpty {
                    guard let next = try input.source() else { return 0 }
                    input.block = next
                }
            } catch let error as ArchiveError {
                input.error = error
                return -1
            } catch {
                return -1
            }
            let n = min(Int(length), input.block.count)
            UnsafeMutableRawPointer(buffer!).copyMemory(from: input.block.baseAddress!, byteCount: n)
            input.block = UnsafeRawBufferPointer(rebasing: input.block[n...])
            return Int32(n)
        }, nil, context, nil, nil, options)
        xmlTextReaderSetStructuredErrorHandler(reader, { context, error in
            let input = Unmanaged<XMLStream.Input>.fromOpaque(context!).takeUnretainedValue()
            guard input.firstError == nil, let error, error.pointee.level.rawValue >= XML_ERR_ERROR.rawValue else { return }
            let text = error.pointee.message.map { String(cString: $0) } ?? "malformed XML"
            input.firstError = "line \(error.pointee.line): \(text.trimmingCharacters(in: .whitespacesAndNewlines))"
        }, context)
    }

    deinit { xmlFreeTextReader(reader) }

    /// Moves to the next node; false at the end of the document.
    /// - Throws: the archive's error under the XML, or the XML's first error.
    func next() throws(XMLStreamError) -> Bool {
        let status = xmlTextReaderRead(reader)
        if status == 1 { return true }
        if let error = input.error { throw XMLStreamError(message: error.message) }
        if status < 0 || input.firstError != nil {
            throw XMLStreamError(message: input.firstError ?? "malformed XML at line \(xmlTextReaderGetParserLineNumber(reader))")
        }
        return false
    }

    var node: Node {
        switch xmlTextReaderNodeType(reader) {
        case 1: .element
        case 15: .endElement
        case 3, 4, 13, 14: .text  // text, CDATA, whitespace, significant whitespace
        default: .other
        }
    }

    /// The current node's local name (no prefix), as a pointer into the dictionary.
    var localName: UnsafePointer<UInt8>? { xmlTextReaderConstLocalName(reader) }

    /// `text` as the dictionary holds it: compare `localName` against it with ===.
    func name(_ text: String) -> UnsafePointer<UInt8>? { xmlTextReaderConstString(reader, text) }

    var isEmptyElement: Bool { xmlTextReaderIsEmptyElement(reader) == 1 }

    /// The current text node's bytes (valid until the next move).
    var value: UnsafeBufferPointer<UInt8> {
        guard let p = xmlTextReaderConstValue(reader) else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: p, count: strlen(UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self)))
    }

    var line: Int { Int(xmlTextReaderGetParserLineNumber(reader)) }

    /// Calls `body` with each attribute of the current element (local name from the
    /// dictionary, value valid during the call), then moves back to the element.
    func attributes(_ body: (UnsafePointer<UInt8>?, UnsafeBufferPointer<UInt8>) -> Void) {
        guard xmlTextReaderMoveToFirstAttribute(reader) == 1 else { return }
        repeat {
            body(xmlTextReaderConstLocalName(reader), value)
        } while xmlTextReaderMoveToNextAttribute(reader) == 1
        xmlTextReaderMoveToElement(reader)
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// The bytes as a String (attribute values that are names or numbers).
    var string: String { String(decoding: self, as: UTF8.self) }
}
