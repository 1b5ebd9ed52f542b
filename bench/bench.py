#!/usr/bin/env python3
"""`make bench`: smsbatch's ingest→report speed and memory against a C floor.

1. Data, in bench/data/ (never committed; reused when already there): a recipient file made by
   `gen-recipients --rows N --seed S` (its row accounting, printed on stderr, is cached next to
   it in a .stats file), its .gz (gzip level 6, mtime 0) and a .zip (deflate, fixed date), so
   all three are the same bytes on every machine.
2. For each of .csv, .gz, .zip: the floor (bench/floor.c: libcsv with counting callbacks, and
   libarchive in front for .gz/.zip) and `smsbatch run --dry-run` interleaved, each under
   /usr/bin/time for its peak RSS; medians. Wall time is taken with a monotonic clock around
   the process (/usr/bin/time's %e has 10 ms steps).
3. A table: smsbatch time, MB/s, rows/s, peak RSS, floor time and the ratio smsbatch/floor,
   with the targets. Both run on the same machine at the same moment, so the ratio holds on
   a noisy machine where the seconds do not.
4. Correctness: every run's summary.json counts must equal what the generator wrote, and
   .csv/.gz/.zip must agree; any mismatch or failed run exits 1.

--double also runs smsbatch once on a file twice as long and prints the peak RSS growth per
extra unique row (the dedupe index's cost per row).

Python 3 standard library only.
"""

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "bench/data"
FLOOR = "bench/floor"
CONFIG = "bench/bench.yaml"
DOUBLE_CONFIG = "bench/bench-double.yaml"
TIME = "/usr/bin/time"
CHUNK = 1 << 20
ZIP_DATE = (2026, 1, 1, 0, 0, 0)

# Targets (issue "make bench"): ratio to the floor, and peak RSS.
TARGET_RATIO = {"csv": 1.8, "gz": 1.2}
TARGET_RSS_MIB = 64
# Issue 12: the same rows as an .xlsx within 3x the time of the CSV.
TARGET_XLSX_RATIO = 3.0
TARGET_BYTES_PER_UNIQUE_ROW = 24

COUNT_KEYS = ("rows", "valid", "invalid", "duplicates", "to_send", "invalid_by_reason")
STAGES = ("ingest", "validate", "dedupe", "split", "send", "report")

GEN_LINE = re.compile(
    r": (\d+) rows, (\d+) bytes; valid (\d+), duplicates (\d+), invalid (\d+)(?: \((.*)\))?\s*$")


class BenchError(Exception):
    pass


def say(msg):
    print(msg, file=sys.stderr, flush=True)


# MARK: - Data

def parse_gen_stats(line):
    """The generator's stderr line → expected summary counts."""
    m = GEN_LINE.search(line)
    if not m:
        raise BenchError(f"cannot read gen-recipients' statistics line: {line!r}")
    rows, size, valid, dups, invalid = (int(g) for g in m.groups()[:5])
    by_reason = {}
    if m.group(6):
        for part in m.group(6).split(", "):
            k, v = part.split("=")
            by_reason[k] = int(v)
    if sum(by_reason.values()) != invalid:
        raise BenchError(f"gen-recipients' reasons do not add up to its invalid count: {line!r}")
    return size, {
        "rows": rows, "valid": valid, "invalid": invalid, "duplicates": dups,
        "to_send": valid - dups, "invalid_by_reason": by_reason,
    }


def ensure_csv(gen, rows, seed):
    """bench/data/recipients-N.csv and its cached statistics; (path, bytes, expected counts)."""
    path = f"{DATA}/recipients-{rows}.csv"
    stats_path = f"{DATA}/recipients-{rows}.stats"
    try:
        with open(stats_path) as f:
            cached = json.load(f)
        if (cached.get("rows") == rows and cached.get("seed") == seed
                and os.path.getsize(path) == cached["bytes"]):
            size, expected = parse_gen_stats(cached["line"])
            return path, size, expected
    except (OSError, ValueError, KeyError, BenchError):
        pass
    say(f"generating {path} ({rows} rows, seed {seed}) ...")
    for p in (path, stats_path):
        if os.path.exists(p):
            os.remove(p)
    tmp = path + ".part"
    r = subprocess.run([gen, "--rows", str(rows), "--seed", str(seed), tmp],
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise BenchError(f"gen-recipients failed (exit {r.returncode}): {r.stderr.strip()}")
    line = r.stderr.strip().splitlines()[-1]
    size, expected = parse_gen_stats(line)
    if os.path.getsize(tmp) != size:
        raise BenchError(f"{tmp}: {os.path.getsize(tmp)} bytes, gen-recipients says {size}")
    os.rename(tmp, path)
    with open(stats_path + ".part", "w") as f:
        json.dump({"rows": rows, "seed": seed, "bytes": size, "line": line}, f, indent=1)
    os.rename(stats_path + ".part", stats_path)
    return path, size, expected


def fresh(derived, source):
    return os.path.exists(derived) and os.path.getmtime(derived) >= os.path.getmtime(source)


def ensure_gz(csv):
    path = csv + ".gz"
    if fresh(path, csv):
        return path
    say(f"compressing {path} ...")
    tmp = path + ".part"
    with open(csv, "rb") as src, open(tmp, "wb") as raw:
        # filename "" and mtime 0: the same bytes whatever the name and the clock.
        with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    os.rename(tmp, path)
    return path


def ensure_zip(csv):
    path = csv[:-len(".csv")] + ".zip"
    if fresh(path, csv):
        return path
    say(f"compressing {path} ...")
    tmp = path + ".part"
    info = zipfile.ZipInfo(os.path.basename(csv), date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        with open(csv, "rb") as src, z.open(info, "w", force_zip64=os.path.getsize(csv) >= 1 << 31) as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    os.rename(tmp, path)
    return path


def xml_text(s):
    """Text for an XML element: escaped, and OOXML's _xHHHH_ for characters XML 1.0 cannot hold."""
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if any(ord(c) < 0x20 and c not in "\t\n" for c in s) or "_x" in s:
        s = s.replace("_x", "_x005F_x")
        s = "".join(f"_x{ord(c):04X}_" if ord(c) < 0x20 and c not in "\t\n" else c for c in s)
    return s


def column_name(i):
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def ensure_xlsx(csv_path):
    """The same rows as an Excel workbook written as Excel writes one: a shared-strings table
    (after the sheet), whole numbers stored as numbers, everything else as shared strings."""
    import csv as csvmod
    path = csv_path[:-len(".csv")] + ".xlsx"
    if fresh(path, csv_path):
        return path
    say(f"writing {path} ...")
    tmp = path + ".part"
    strings, order = {}, []
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        info = zipfile.ZipInfo("xl/worksheets/sheet1.xml", date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as src, z.open(info, "w", force_zip64=True) as dst:
            dst.write(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {ns}><sheetData>'.encode())
            buf = []
            for r, record in enumerate(csvmod.reader(src), start=1):
                cells = []
                for c, value in enumerate(record):
                    if value == "":
                        continue
                    ref = f"{column_name(c)}{r}"
                    if value.isascii() and value.isdigit() and len(value) <= 15 and str(int(value)) == value:
                        cells.append(f'<c r="{ref}"><v>{value}</v></c>')
                    else:
                        k = strings.get(value)
                        if k is None:
                            k = strings[value] = len(order)
                            order.append(value)
                        cells.append(f'<c r="{ref}" t="s"><v>{k}</v></c>')
                buf.append(f'<row r="{r}">{"".join(cells)}</row>')
                if len(buf) >= 4096:
                    dst.write("".join(buf).encode())
                    buf = []
            dst.write(("".join(buf) + "</sheetData></worksheet>").encode())
        def part(name, text):
            i = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            i.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(i, text)
        part("xl/sharedStrings.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst {ns} uniqueCount="{len(order)}">'
             + "".join(f'<si><t xml:space="preserve">{xml_text(v)}</t></si>' for v in order) + "</sst>")
        part("xl/workbook.xml", f'<workbook {ns} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
             '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
        part("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
             '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
             '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
             '</Relationships>')
        part("xl/styles.xml", f'<styleSheet {ns}><cellXfs count="1"><xf numFmtId="0"/></cellXfs></styleSheet>')
        part("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    os.rename(tmp, path)
    return path


def warm(path):
    """Reads a file once so no timed run pays for the disk."""
    with open(path, "rb") as f:
        while f.read(8 * CHUNK):
            pass


# MARK: - Runs

def timed(cmd, stdout_path=None):
    """Runs cmd under /usr/bin/time; (wall s, peak RSS KiB, cpu s, stdout text)."""
    with tempfile.NamedTemporaryFile("r", dir=DATA, suffix=".time") as tf:
        out = open(stdout_path, "w") if stdout_path else subprocess.PIPE
        try:
            t0 = time.perf_counter()
            r = subprocess.run([TIME, "-o", tf.name, "-f", "%e %M %U %S"] + cmd,
                               stdout=out, stderr=subprocess.PIPE, text=True)
            wall = time.perf_counter() - t0
        finally:
            if stdout_path:
                out.close()
        if r.returncode != 0:
            tail = "\n".join(r.stderr.strip().splitlines()[-5:])
            raise BenchError(f"{' '.join(cmd)}: exit {r.returncode}\n{tail}")
        fields = tf.read().split()[-4:]
        _, rss_kib, user, sys_ = fields
        return wall, int(rss_kib), float(user) + float(sys_), r.stdout if not stdout_path else None


def run_floor(kind, path):
    cmd = [FLOOR, path] if kind == "csv" else [FLOOR, "--archive", path]
    wall, rss, cpu, out = timed(cmd)
    rows, fields, nbytes = (int(x) for x in out.split())
    return {"wall": wall, "rss": rss, "cpu": cpu, "rows": rows, "fields": fields, "bytes": nbytes}


def run_smsbatch(smsbatch, kind, path, config, tag=None):
    outdir = f"{DATA}/out-{tag or kind}"
    shutil.rmtree(outdir, ignore_errors=True)
    json_path = f"{DATA}/summary-{tag or kind}.json"
    wall, rss, cpu, _ = timed(
        [smsbatch, "run", "--dry-run", "--json", "--out", outdir, "-c", config, path], json_path)
    with open(json_path) as f:
        summary = json.load(f)
    return {"wall": wall, "rss": rss, "cpu": cpu, "summary": summary}


def counts(summary):
    return {k: summary.get(k) for k in COUNT_KEYS}


def check_summary(label, summary, expected, problems):
    if summary.get("status") != "completed":
        problems.append(f"{label}: status {summary.get('status')!r}, reject_reason "
                        f"{summary.get('reject_reason')!r} {summary.get('reject_detail') or ''}")
    got = counts(summary)
    for k in COUNT_KEYS:
        if got[k] != expected[k]:
            problems.append(f"{label}: {k} = {got[k]!r}, generator says {expected[k]!r}")


# MARK: - Report

def median(xs):
    return statistics.median(xs)


def mib(kib):
    return kib / 1024


def verdict(ok):
    return "PASS" if ok else "MISS"


def table(headers, rows, align=None):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    align = align or ["<"] + [">"] * (len(headers) - 1)
    fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths))
    lines = [fmt.format(*headers), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*(str(x) for x in r)) for r in rows]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=700_000, help="data rows in the generated file (700000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    ap.add_argument("--runs", type=int, default=5, help="smsbatch runs per file (5); the floor runs max(1, runs*3//5)")
    ap.add_argument("--bin-dir", default=".build/release", help="where smsbatch and gen-recipients are (.build/release)")
    ap.add_argument("--double", action="store_true",
                    help="also run once on a file of 2*rows rows and print RSS growth per extra unique row")
    ap.add_argument("--debug-bin", metavar="PATH",
                    help="also run this (debug) smsbatch once on the .csv; its counts must match")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    a = ap.parse_args()
    if a.rows < 1 or a.runs < 1:
        ap.error("--rows and --runs must be at least 1")

    os.chdir(ROOT)
    smsbatch = os.path.join(a.bin_dir, "smsbatch")
    gen = os.path.join(a.bin_dir, "gen-recipients")
    for exe, hint in ((smsbatch, "swift build -c release"), (gen, "swift build -c release"),
                      (FLOOR, "make bench/floor"), (TIME, "apt-get install time")):
        if not os.access(exe, os.X_OK):
            raise BenchError(f"{exe} missing: {hint} (or just `make bench`)")
    os.makedirs(DATA, exist_ok=True)

    csv, csv_bytes, expected = ensure_csv(gen, a.rows, a.seed)
    files = {"csv": csv, "gz": ensure_gz(csv), "zip": ensure_zip(csv)}
    floor_runs = max(1, a.runs * 3 // 5)
    problems = []
    results = {}
    for kind, path in files.items():
        warm(path)
        say(f"{kind}: {path}, floor x{floor_runs}, smsbatch x{a.runs} ...")
        floors, runs = [], []
        # Interleaved, so a burst of load from elsewhere hits both sides alike.
        for i in range(max(floor_runs, a.runs)):
            if i < floor_runs:
                floors.append(run_floor(kind, path))
            if i < a.runs:
                runs.append(run_smsbatch(smsbatch, kind, path, CONFIG))
                check_summary(f"{kind} run {i + 1}", runs[-1]["summary"], expected, problems)
        for f in floors:
            if (f["rows"], f["bytes"]) != (a.rows + 1, csv_bytes):
                problems.append(f"floor {kind}: {f['rows']} records, {f['bytes']} bytes; "
                                f"expected {a.rows + 1} (header included), {csv_bytes}")
        results[kind] = {"floors": floors, "runs": runs}

    # The same rows as an .xlsx (issue 12: within 3x the CSV's time). Its counts by reason may
    # differ from the CSV's (a short record is a row of empty cells in a sheet, and XML holds
    # no invalid UTF-8), so only the rows are checked.
    xlsx = ensure_xlsx(csv)
    warm(xlsx)
    say(f"xlsx: {xlsx}, smsbatch x{a.runs} ...")
    xlsx_runs = [run_smsbatch(smsbatch, "xlsx", xlsx, CONFIG) for _ in range(a.runs)]
    for i, r in enumerate(xlsx_runs):
        if r["summary"].get("rows") != expected["rows"]:
            problems.append(f"xlsx run {i + 1}: rows {r['summary'].get('rows')}, expected {expected['rows']}")

    # The three forms of one file must give one answer.
    first = counts(results["csv"]["runs"][0]["summary"])
    for kind in ("gz", "zip"):
        if counts(results[kind]["runs"][0]["summary"]) != first:
            problems.append(f"{kind} counts differ from csv: {counts(results[kind]['runs'][0]['summary'])} vs {first}")

    debug = None
    if a.debug_bin:
        say(f"debug build: {a.debug_bin} on {csv} ...")
        debug = run_smsbatch(a.debug_bin, "csv", csv, CONFIG, tag="debug")
        check_summary("debug build", debug["summary"], expected, problems)
        if counts(debug["summary"]) != first:
            problems.append("debug build's counts differ from the release build's")

    double = None
    if a.double:
        dcsv, dbytes, dexpected = ensure_csv(gen, 2 * a.rows, a.seed)
        warm(dcsv)
        say(f"double: {dcsv}, smsbatch x1 ...")
        double = run_smsbatch(smsbatch, "csv", dcsv, DOUBLE_CONFIG, tag="double")
        check_summary("double", double["summary"], dexpected, problems)
        double["bytes"] = dbytes

    # MARK: tables
    mb = csv_bytes / 1e6
    print(f"\nsmsbatch run --dry-run on {a.rows:,} rows ({mb:.1f} MB of CSV, seed {a.seed}), "
          f"median of {a.runs} (floor: median of {floor_runs})")
    print("MB/s and rows/s are of the CSV inside; ratio = smsbatch median / floor median\n")
    headers = ["file", "MB", "smsbatch s", "min s", "cpu s", "MB/s", "rows/s", "RSS MiB",
               "floor s", "ratio", "target", "RSS"]
    rows = []
    verdicts = []
    for kind, path in files.items():
        r = results[kind]
        w = median([x["wall"] for x in r["runs"]])
        fw = median([x["wall"] for x in r["floors"]])
        rss = median([x["rss"] for x in r["runs"]])
        ratio = w / fw
        target = TARGET_RATIO.get(kind)
        tgt = f"<= {target}x {verdict(ratio <= target)}" if target else "-"
        rss_ok = mib(rss) <= TARGET_RSS_MIB
        verdicts += ([ratio <= target] if target else []) + [rss_ok]
        rows.append([
            os.path.basename(path), f"{os.path.getsize(path) / 1e6:.1f}",
            f"{w:.3f}", f"{min(x['wall'] for x in r['runs']):.3f}",
            f"{median([x['cpu'] for x in r['runs']]):.2f}",
            f"{mb / w:.0f}", f"{a.rows / w:,.0f}", f"{mib(rss):.1f}",
            f"{fw:.3f}", f"{ratio:.2f}x", tgt, f"<= {TARGET_RSS_MIB} {verdict(rss_ok)}",
        ])
    w = median([x["wall"] for x in xlsx_runs])
    csv_wall = median([x["wall"] for x in results["csv"]["runs"]])
    rss = median([x["rss"] for x in xlsx_runs])
    xlsx_ok = w / csv_wall <= TARGET_XLSX_RATIO
    verdicts.append(xlsx_ok)
    rows.append([
        os.path.basename(xlsx), f"{os.path.getsize(xlsx) / 1e6:.1f}", f"{w:.3f}", f"{min(x['wall'] for x in xlsx_runs):.3f}",
        f"{median([x['cpu'] for x in xlsx_runs]):.2f}", "-", f"{a.rows / w:,.0f}", f"{mib(rss):.1f}",
        "(csv)", f"{w / csv_wall:.2f}x", f"<= {TARGET_XLSX_RATIO}x {verdict(xlsx_ok)}", "-",
    ])
    print(table(headers, rows))
    print("the .xlsx line's ratio is to smsbatch on the .csv, not to the floor")

    print("\nsummary.json stage_ms, median per stage\n")
    srows = []
    for name, runs in [(os.path.basename(p), results[k]["runs"]) for k, p in files.items()] + [(os.path.basename(xlsx), xlsx_runs)]:
        st = [x["summary"].get("stage_ms", {}) for x in runs]
        srows.append([name] + [f"{median([s.get(k, 0) for s in st]):.0f}" for k in STAGES])
    print(table(["file"] + [f"{k} ms" for k in STAGES], srows))

    c = first
    print(f"\ncounts (every run, = gen-recipients): rows {c['rows']}, valid {c['valid']}, "
          f"invalid {c['invalid']}, duplicates {c['duplicates']}, to_send {c['to_send']}"
          + (f"; debug build: same" if debug and counts(debug["summary"]) == first else ""))

    if double:
        single_rss = median([x["rss"] for x in results["csv"]["runs"]])
        extra = double["summary"]["to_send"] - c["to_send"]
        growth = (double["rss"] - single_rss) * 1024 / extra if extra > 0 else float("nan")
        ok = growth <= TARGET_BYTES_PER_UNIQUE_ROW
        verdicts.append(ok)
        print(f"\nRSS growth: {2 * a.rows:,} rows ({double['bytes'] / 1e6:.1f} MB) in {double['wall']:.2f} s, "
              f"peak RSS {mib(double['rss']):.1f} MiB vs {mib(single_rss):.1f} MiB; "
              f"{extra:,} extra unique rows -> {growth:.1f} bytes per unique row "
              f"(target <= {TARGET_BYTES_PER_UNIQUE_ROW}: {verdict(ok)})")

    try:
        load = os.getloadavg()
        print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"on {os.cpu_count()} cores (other work disturbs the seconds, less the ratio)")
    except OSError:
        pass

    if problems:
        print("\nCORRECTNESS FAILURES:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    if a.strict and not all(verdicts):
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(1)
