import ArgumentParser
import Foundation
import SMSBatch
import SMSBatchMetrics

/// `--metrics-file PATH` (run, drain, watch): the run's metrics in Prometheus text format,
/// replaced whole after each job and at the end (node_exporter's textfile collector).
struct MetricsFileOption: ParsableArguments {
    @Option(help: "Write the run's metrics here in Prometheus text format after each job, replaced whole (node_exporter's textfile collector reads *.prom).")
    var metricsFile: String?

    /// The exporter the run counts into, when a metrics file (or `extra`) asks for one.
    func exporter(_ extra: Bool = false) -> PrometheusExporter? {
        metricsFile != nil || extra ? PrometheusExporter() : nil
    }

    /// Writes the file, if one was asked for; a failure is a warning (the jobs are not at fault).
    func write(_ exporter: PrometheusExporter?) {
        guard let exporter, let metricsFile else { return }
        do { try exporter.write(to: metricsFile) } catch {
            printError("\(metricsFile): warning: metrics not written: \(error.problem)")
        }
    }
}

/// `--metrics HOST:PORT` as an address; a bare port listens on 127.0.0.1.
struct ListenAddress {
    let host: String
    let port: Int

    init?(_ text: String) {
        var host = "127.0.0.1"
        var portText = Substring(text)
        // An IPv6 address goes in brackets: [::1]:9464.
        if text.filter({ $0 == ":" }).count > 1 && !text.hasPrefix("[") { return nil }
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            portText = text[text.index(after: colon)...]
            if host.isEmpty { host = "0.0.0.0" }
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }
}
