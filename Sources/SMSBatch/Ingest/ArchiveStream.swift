internal import CArchive

/// libarchive failed: corrupt or truncated archive, or data that is no archive at all.
struct ArchiveError: Error {
    let message: String
}

/// Streams the entries of an input through libarchive: every compression filter, every
/// archive format libarchive reads but mtree (a text format that would claim a CSV), and
/// raw last (it takes anything as one entry named `data`). Only a 7-Zip archive, whose
/// index is at its end, is read with seeking; every other form is one streaming pass.
/// Nothing is extracted to disk. One instance owns one `archive *`; not Sendable, it is
/// used by one thread at a time.
final class ArchiveStream {
    private let archive: OpaquePointer
    private let input: InputFile
    private var opened = false
    /// Decompressed bytes handed out so far, across entries.
    private(set) var expandedBytes: Int64 = 0
    /// Entries read so far, of every kind.
    private(set) var entryCount = 0
    /// The input decompressed to no bytes at all: one empty entry.
    private var emptyStream = false

    struct Entry {
        let name: String
        let isRegularFile: Bool
        /// The whole input is one stream (plain or only compressed), not an archive.
        let isRaw: Bool
    }

    /// `skippable`: entries not read are skipped by seeking over them (a workbook's first
    /// pass, which reads only its small parts), not read through.
    init(input: InputFile, skippable: Bool = false) {
        self.input = input
        self.skippable = skippable
        archive = archive_read_new()
        archive_read_support_filter_all(archive)
        sevenZip = input.head(6) == [0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]
        if sevenZip {
            archive_read_support_format_7zip(archive)
        } else {
            archive_read_support_format_zip_streamable(archive)
            archive_read_support_format_tar(archive)
            archive_read_support_format_cpio(archive)
            archive_read_support_format_ar(archive)
            archive_read_support_format_iso9660(archive)
            archive_read_support_format_rar(archive)
            archive_read_support_format_rar5(archive)
            archive_read_support_format_xar(archive)
            archive_read_support_format_cab(archive)
            archive_read_support_format_lha(archive)
            archive_read_support_format_warc(archive)
            archive_read_support_format_raw(archive)
        }
    }

    /// The input is a 7-Zip archive (read with seeking).
    private let sevenZip: Bool
    private let skippable: Bool

    deinit { archive_read_free(archive) }

    private func open() throws(ArchiveError) {
        opened = true
        let client = Unmanaged.passUnretained(input).toOpaque()
        if sevenZip {
            archive_read_set_seek_callback(archive) { _, data, offset, whence in
                Unmanaged<InputFile>.fromOpaque(data!).takeUnretainedValue().seek(offset, whence: whence)
            }
        }
        if skippable {
            archive_read_set_skip_callback(archive) { _, data, request in
                let file = Unmanaged<InputFile>.fromOpaque(data!).takeUnretainedValue()
                let before = file.seek(0, whence: SEEK_CUR)
                let after = file.seek(request, whence: SEEK_CUR)
                return before < 0 || after < 0 ? 0 : min(after, file.size) - before
            }
        }
        let status = archive_read_open(archive, client, nil, { _, data, out in
            let file = Unmanaged<InputFile>.fromOpaque(data!).takeUnretainedValue()
            let n = file.read()
            out?.pointee = UnsafeRawPointer(file.buffer)
            return n
        }, nil)
        if status != ARCHIVE_OK {
            if isEmptyCompressedStream { emptyStream = true; return }
            throw error()
        }
    }

    /// A recognised compression and then no format: the raw format takes any byte, so the
    /// stream inside is empty (an empty .gz). libarchive says so with EILSEQ; it is an empty
    /// file (`no_rows`), not damage.
    private var isEmptyCompressedStream: Bool {
        archive_filter_count(archive) > 1 && archive_errno(archive) == 84  // EILSEQ
    }

    /// The next entry, or nil at the end of the archive.
    func nextEntry() throws(ArchiveError) -> Entry? {
        if !opened { try open() }
        var entry: OpaquePointer?
        if emptyStream {
            if entryCount > 0 { return nil }
            entryCount = 1
            return Entry(name: "data", isRegularFile: true, isRaw: true)
        }
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        if status < ARCHIVE_WARN { throw error() }
        entryCount += 1
        let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? "data"
        let mode = archive_entry_filetype(entry)
        let isRaw = (archive_format(archive) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_RAW
        // An ar member records its permission bits only, no file type: it is a plain file.
        let plain = mode == UInt32(S_IFREG) || (mode == 0 && (archive_format(archive) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_AR)
        return Entry(name: name, isRegularFile: isRaw || plain, isRaw: isRaw)
    }

    /// The next block of the current entry's decompressed bytes, as libarchive produced it
    /// (no copy); nil at the entry's end. Valid until the next call.
    func nextBlock() throws(ArchiveError) -> UnsafeRawBufferPointer? {
        if emptyStream { return nil }
        var buf: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        let status = archive_read_data_block(archive, &buf, &size, &offset)
        if status == ARCHIVE_EOF { return nil }
        if status < ARCHIVE_WARN { throw error() }
        expandedBytes += Int64(size)
        return UnsafeRawBufferPointer(start: buf, count: size)
    }

    /// The container, once the first entry was read: a zip or a tar read straight from the
    /// file (no compression filter), whose ends can be checked on the file itself.
    enum Container { case zip, plainTar, other }

    var container: Container {
        let format = archive_format(archive) & ARCHIVE_FORMAT_BASE_MASK
        if format == ARCHIVE_FORMAT_ZIP { return .zip }
        if format == ARCHIVE_FORMAT_TAR && archive_filter_count(archive) <= 1 { return .plainTar }
        return .other
    }

    private func error() -> ArchiveError {
        let text = archive_error_string(archive).map { String(cString: $0) } ?? "unrecognised or corrupt data"
        return ArchiveError(message: text)
    }
}
