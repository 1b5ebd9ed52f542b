import Foundation
import Prometheus
import SMSBatch

/// The pipeline's metrics in Prometheus text format (README "Metrics"): one registry per
/// process, served by `MetricsServer` (`watch --metrics`) or written to a file
/// (`--metrics-file`, node_exporter's textfile-collector convention).
public final class PrometheusExporter: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// What the pipeline counts into this registry: give it to `RunOptions.metrics`.
    public let metrics: PipelineMetrics

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // A send answers in milliseconds to a minute (timeouts); a commit is one fsync.
        factory.durationHistogramBuckets = [
            "smsbatch_send_request_duration_seconds": [
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
            ],
            "smsbatch_ledger_commit_duration_seconds": [
                .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ],
        ]
        metrics = PipelineMetrics(factory: factory)
    }

    /// The exposition: every metric with its `# HELP` line.
    public func text() -> String {
        metrics.refreshGauges()
        var out = ""
        for line in registry.emitToString().split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if let help = PipelineMetrics.help[String(name)] { out += "# HELP \(name) \(help)\n" }
            }
            out += line
            out += "\n"
        }
        while out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }

    /// Writes the exposition to `path` whole (a temporary file in the same folder, renamed).
    public func write(to path: String) throws(ReportError) {
        try WholeFile.write(text(), to: path)
    }
}
