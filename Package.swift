// swift-tools-version:6.0
import PackageDescription

/// One settings array for every Swift target.
let swiftSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "smsbatch",
    products: [
        .executable(name: "smsbatch", targets: ["smsbatch"]),
        .library(name: "SMSBatch", targets: ["SMSBatch"]),
        .executable(name: "gen-recipients", targets: ["gen-recipients"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The webhook receiver faces the internet: SwiftNIO's event loops and HTTP/1 parser
        // (header size limit, no thread per connection) under our own timeouts and limits.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Metrics: the pipeline counts through swift-metrics' API (CoreMetrics only); the
        // command line exports them in Prometheus text format with swift-prometheus.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Debian's libcsv-dev ships no pkg-config file: a plain [system] module map.
        .systemLibrary(name: "CCSV", path: "Sources/CCSV", providers: [.apt(["libcsv-dev"])]),
        .systemLibrary(
            name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]),
        // SHA-256 of input files (job id, repeat detection) from the system's libcrypto.
        .systemLibrary(
            name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),
        // The state ledger (jobs, request intents and answers, sent index) in SQLite's C API.
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        // The HTTP client: libcurl's multi interface, driven by one thread per client.
        .systemLibrary(
            name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        // Spreadsheets (.xlsx, .ods): libxml2's streaming xmlTextReader over the sheet's XML.
        .systemLibrary(
            name: "CXML2", path: "Sources/CXML2", pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]),
        // The ledger on PostgreSQL (`state.url`, several hosts): libpq, as cheap to build as
        // SQLite's C API (postgres-nio would add minutes to every CI build).
        .systemLibrary(
            name: "CPQ", path: "Sources/CPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),
        .target(
            name: "SMSBatch",
            dependencies: [
                "CCSV", "CArchive", "CCrypto", "CSQLite", "CCurl", "CXML2", "CPQ",
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings),
        // The provider simulator (SPEC §8) and its small HTTP server: `smsbatch sandbox`,
        // `endpoint: sandbox` (the CLI starts it for the library) and the tests.
        .target(name: "SMSBatchSandbox", dependencies: ["SMSBatch"], swiftSettings: swiftSettings),
        // `smsbatch webhook`: receives the provider's pushed delivery reports (SPEC §11).
        .target(
            name: "SMSBatchWebhook",
            dependencies: [
                "SMSBatch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        // Prometheus text format: `watch --metrics` (with /healthz) and `--metrics-file`.
        .target(
            name: "SMSBatchMetrics",
            dependencies: [
                "SMSBatch",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "smsbatch",
            dependencies: [
                "SMSBatch", "SMSBatchSandbox", "SMSBatchWebhook", "SMSBatchMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        // libFuzzer targets (`make fuzz`, built with -sanitize=fuzzer,address -DFUZZING); an
        // ordinary build replays corpus files through the same checks.
        .executableTarget(name: "smsbatch-fuzz", dependencies: ["SMSBatch", "SMSBatchSandbox"], swiftSettings: swiftSettings),
        // Deterministic test recipient files, for tests and `make gen`; no dependencies.
        .target(name: "RecipientGenerator", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gen-recipients", dependencies: ["RecipientGenerator"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SMSBatchTests",
            dependencies: ["SMSBatch", "SMSBatchSandbox", "SMSBatchWebhook", "SMSBatchMetrics", "CArchive", "CCSV", "RecipientGenerator"],
            swiftSettings: swiftSettings),
    ]
)
