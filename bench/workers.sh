#!/usr/bin/env bash
# `make bench-workers`: what several watch workers on one PostgreSQL ledger do, measured on
# this machine with the release build:
#   - rows/s from first claim to last file in done/, sent to a standalone sandbox with every
#     limit off, by 1, 2 and 3 workers (FILES files of ROWS rows in a shared inbox);
#   - the same with 3 workers, one SIGKILLed once 2 files are done (its host died): the job it
#     held waits for its lease (LEASE) and another worker resumes it;
#   - ledger commits/s of one `run` (NODES rows a request) on SQLite and on PostgreSQL, from
#     smsbatch_ledger_commit_duration_seconds (count / sum: one connection, back to back).
# PostgreSQL is a private server in a temporary folder (fsync on, as in production), run as
# the `postgres` user when this runs as root. Nothing leaves 127.0.0.1.
set -euo pipefail
BIN=${BIN:-$PWD/.build/release/smsbatch}
GEN=${GEN:-$PWD/.build/release/gen-recipients}
FILES=${FILES:-6}
ROWS=${ROWS:-50000}
LEASE=${LEASE:-10s}
NODES=${NODES:-50}

work=$(mktemp -d /tmp/smsbatch-bench-workers.XXXXXX)
chmod 777 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port=$((20000 + RANDOM % 9000))
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
as_pg "$pgbin/initdb" -D "$work/pg" -U smsbatch --auth=trust -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" >/dev/null
# newdb NAME: a fresh database for one run, and its URL.
newdb() { as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U smsbatch "$1"; echo "postgres://smsbatch@127.0.0.1:$port/$1"; }

export SMSBATCH_TOKEN=bench-$RANDOM$RANDOM
"$BIN" sandbox --port 0 --rate-limit 0 >"$work/sandbox.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/sandbox.out" && break; sleep 0.1; done
endpoint=$(sed -n 's/^sandbox listening on //p' "$work/sandbox.out")

for i in $(seq "$FILES"); do "$GEN" --rows "$ROWS" --seed $((4000 + i)) "$work/f$i.csv" 2>/dev/null; done
rows_total=$((FILES * ROWS))

now() { date +%s.%N; }
sum_to_send() { python3 -c 'import json,glob,sys; print(sum(json.load(open(f))["to_send"] for f in glob.glob(sys.argv[1] + "/spool/outbox/*/summary.json")))' "$1"; }

# run_workers N KILL [sqlite]: N watch workers on a fresh PostgreSQL ledger (or, given
# sqlite, one worker on the SQLite file, for comparison); KILL=1 kills the first once 2
# files are done.
run_workers() {
    local n=$1 kill=$2 engine=${3:-postgres}
    local dir="$work/w$1-$2-$engine"
    local state="  path: ./state.sqlite"
    [ "$engine" = postgres ] && state="  url: $(newdb "w$1k$2")"
    mkdir -p "$dir/spool/inbox"
    cat >"$dir/pipeline.yaml" <<YAML
send:
  endpoint: $endpoint
  requests_per_minute: 1000000
  status_requests_per_minute: 1000000
watch:
  root: ./spool
  settle: 1s
split:
  batch_size: 50000
state:
$state
  lease: $LEASE
YAML
    for i in $(seq "$FILES"); do cp "$work/f$i.csv" "$dir/spool/inbox/.f$i.csv.part"; mv "$dir/spool/inbox/.f$i.csv.part" "$dir/spool/inbox/f$i.csv"; done
    local mine=()
    local t0; t0=$(now)
    for w in $(seq "$n"); do (cd "$dir" && exec "$BIN" watch) >/dev/null 2>"$dir/worker$w.log" & mine+=($!); pids+=($!); done
    local killed=0
    while [ "$(ls "$dir/spool/done" 2>/dev/null | wc -l)" -lt "$FILES" ]; do
        if ! kill -0 "${mine[$((n - 1))]}" 2>/dev/null; then echo "a worker ended:"; tail -n 5 "$dir"/worker*.log; exit 1; fi
        if [ "$kill" = 1 ] && [ $killed = 0 ] && [ "$(ls "$dir/spool/done" 2>/dev/null | wc -l)" -ge 2 ]; then kill -9 "${mine[0]}"; killed=1; fi
        sleep 0.05
    done
    local t1; t1=$(now)
    for p in "${mine[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait "${mine[@]}" 2>/dev/null || true
    # (bash reports the killed worker as "Killed": that is the one this run killed)
    local sent; sent=$(sum_to_send "$dir")
    python3 -c "import sys; n,k,e,rows,sent,t=sys.argv[1:]; t=float(t); print(f'{n} worker(s){\" (one killed mid-run)\" if k==\"1\" else \"\"}, {\"SQLite\" if e==\"sqlite\" else \"PostgreSQL\"} ledger: {int(rows):,} rows, {int(sent):,} sent in {t:.1f} s = {int(sent)/t:,.0f} rows/s sent')" \
        "$n" "$kill" "$engine" "$rows_total" "$sent" "$(echo "$t1 - $t0" | bc)"
}

echo "bench-workers: $FILES files of $ROWS rows, sandbox limits off, lease $LEASE, $(nproc) cores"
run_workers 1 0 sqlite
run_workers 1 0
run_workers 2 0
run_workers 3 0
run_workers 3 1

# Ledger commits/s: one run of one file, NODES rows a request, SQLite then PostgreSQL.
commits() {
    local kind=$1
    local dir="$work/c-$1"
    mkdir -p "$dir"
    local state="  path: ./state.sqlite"
    [ "$kind" = postgres ] && state="  url: $(newdb commits)"
    printf 'send:\n  endpoint: %s\n  requests_per_minute: 1000000\n  nodes_per_request: %s\nstate:\n%s\n' "$endpoint" "$NODES" "$state" >"$dir/pipeline.yaml"
    (cd "$dir" && "$BIN" run "$work/f1.csv" --metrics-file m.prom >/dev/null 2>&1) || true
    python3 - "$kind" "$dir/m.prom" <<'PY'
import sys
kind, path = sys.argv[1:]
m = {}
for line in open(path):
    if line.startswith("smsbatch_ledger_commit_duration_seconds_"):
        k, v = line.split()[:2]
        m[k.split("{")[0]] = float(v)
n, s = m["smsbatch_ledger_commit_duration_seconds_count"], m["smsbatch_ledger_commit_duration_seconds_sum"]
print(f"ledger on {kind}: {int(n):,} commits, {s:.2f} s in commits = {n / s:,.0f} commits/s ({1000 * s / n:.2f} ms each)")
PY
}
commits sqlite
commits postgres
