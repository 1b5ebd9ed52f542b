import Foundation
import Testing
@testable import SMSBatch

/// Headless Chromium (Debian's `chromium`, which `make test` installs), run as a person's
/// browser would open the page: no network, a profile of its own.
struct HeadlessChromium {
    let binary: String
    let profile: String

    /// The first Chromium on PATH; nil when there is none.
    static func find() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                let candidate = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }

    /// Runs Chromium headless on `url` with `flags`: its exit status, stdout and stderr.
    func run(_ flags: [String], url: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        // --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                       "--enable-logging=stderr", "--v=0"] + flags + [url]
        let id = UUID().uuidString
        let out = NSTemporaryDirectory() + "chromium-out-" + id, err = NSTemporaryDirectory() + "chromium-err-" + id
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: err) }
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        let deadline = Date().addingTimeInterval(90)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { p.terminate(); p.waitUntilExit() }
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// The console messages Chromium logged for the page (`INFO:CONSOLE…] "message"`).
    static func consoleMessages(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init)
    }
}

/// The repository's samples/ folder (the tests run from a build of this clone).
private let samplesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("samples").path

@Suite("Report: report.html as a person sees it, in headless Chromium", .serialized, .tags(.process), .notInFastRuns)
struct ReportBrowserTests {
    @Test("a sample job's report.html renders to a PNG, its text holds summary.json's numbers, it prints on A4, and the page logs nothing to the console")
    func rendersInChromium() throws {
        guard let binary = HeadlessChromium.find() else {
            Issue.record("Chromium is not installed: `make test` installs Debian's chromium package (see DEBS in the Makefile); without it report.html cannot be checked as a person sees it")
            return
        }
        let dir = TempDir()
        let chromium = HeadlessChromium(binary: binary, profile: dir.file("profile"))
        // The sample as `make run` sends it, to a sandbox whose delivery reports are final at
        // once: the first pull has them all, whatever the machine's speed.
        try FileManager.default.createDirectory(atPath: dir.file("samples"), withIntermediateDirectories: true)
        for name in ["every-reason.csv", "every-reason.yaml", "optout.txt"] {
            try FileManager.default.copyItem(atPath: samplesDir + "/" + name, toPath: dir.file("samples/" + name))
        }
        let sandbox = try SandboxProcess(cwd: dir.path, ["--dlr-delay", "0"])
        let yaml = try String(contentsOfFile: dir.file("samples/every-reason.yaml"), encoding: .utf8)
        dir.write("samples/every-reason.yaml", yaml + "\nsend:\n  endpoint: \(sandbox.endpoint)\n")
        let run = try smsbatch(["run", "--now", "2027-01-01T06:30:00Z", "--wait-dlr", "120s", "-c", "samples/every-reason.yaml", "--out", "out",
                                "samples/every-reason.csv"], cwd: dir.path, env: ["SMSBATCH_TOKEN": sandbox.token])
        #expect(run.status == 0, "\(run.stderr)")
        let report = dir.file("out/report.html")
        let summary = try #require(JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: dir.file("out/summary.json")))))
        let url = URL(fileURLWithPath: report).absoluteString

        // A picture of the page.
        let png = dir.file("report.png")
        let shot = try chromium.run(["--hide-scrollbars", "--window-size=900,2800", "--screenshot=\(png)"], url: url)
        let pngBytes = FileManager.default.contents(atPath: png) ?? Data()
        guard shot.status == 0, pngBytes.count > 10_000 else {
            Issue.record("Chromium could not start or render (exit \(shot.status)): \(shot.stderr.suffix(1_500))")
            return
        }
        #expect(Array(pngBytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(HeadlessChromium.consoleMessages(shot.stderr).isEmpty, "\(HeadlessChromium.consoleMessages(shot.stderr))")

        // The page as text: summary.json's numbers, as people read them.
        let dom = try chromium.run(["--dump-dom"], url: url)
        #expect(dom.status == 0)
        #expect(HeadlessChromium.consoleMessages(dom.stderr).isEmpty, "\(HeadlessChromium.consoleMessages(dom.stderr))")
        let text = dom.stdout.replacing(/<[^>]*>/, with: " ")
        func number(_ key: String, in object: JSONValue? = nil) -> String {
            grouped((object ?? summary)[key]?.text.flatMap(Int.init) ?? -1)
        }
        #expect(text.contains("Job \(summary["job"]?.text ?? "?")"))
        #expect(text.contains(summary["sha256"]?.text ?? "?"))
        for key in ["rows", "valid", "to_send", "submitted"] { #expect(text.contains(" \(number(key)) "), "\(key): \(number(key))") }
        #expect(text.contains("Rejected rows: \(number("invalid"))"))
        if case .object(let reasons)? = summary["invalid_by_reason"] {
            for (code, _) in reasons { #expect(text.contains(code), "\(code)") }
        }
        let delivery = try #require(summary["delivery"])
        #expect(text.contains(" \(number("delivered", in: delivery)) "), "delivered")
        if case .object(let statuses)? = delivery["by_status"] {
            for (status, n) in statuses { #expect(text.contains("\(status) ") && text.contains(" \(grouped(n.text.flatMap(Int.init) ?? -1)) "), "\(status)") }
        }
        if case .object(let messages)? = summary["messages"] { #expect(text.contains("Messages: \(number("sms_parts", in: .object(messages))) SMS parts")) }
        #expect(text.contains("Caps"))

        // Printed: A4 pages (595 × 842 points).
        let pdf = dir.file("report.pdf")
        let print = try chromium.run(["--no-pdf-header-footer", "--print-to-pdf=\(pdf)"], url: url)
        #expect(print.status == 0)
        let pdfText = String(decoding: FileManager.default.contents(atPath: pdf) ?? Data(), as: UTF8.self)
        let boxes = pdfText.matches(of: /MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]/).map { (Double($0.output.1)!, Double($0.output.2)!) }
        #expect(!boxes.isEmpty && boxes.count <= 6, "\(boxes.count) pages")
        for (w, h) in boxes { #expect(abs(w - 595.3) < 2 && abs(h - 841.9) < 2, "page \(w) × \(h) is not A4") }
    }

    @Test("the console check can fail: a page that logs an error is caught")
    func consoleCheckCatchesErrors() throws {
        guard let binary = HeadlessChromium.find() else {
            Issue.record("Chromium is not installed: `make test` installs Debian's chromium package")
            return
        }
        let dir = TempDir()
        let page = dir.write("bad.html", "<html><body><script>console.error('broken page')</script></body></html>")
        let dom = try HeadlessChromium(binary: binary, profile: dir.file("profile")).run(["--dump-dom"], url: URL(fileURLWithPath: page).absoluteString)
        #expect(HeadlessChromium.consoleMessages(dom.stderr).contains { $0.contains("broken page") }, "\(dom.stderr.suffix(800))")
    }
}
