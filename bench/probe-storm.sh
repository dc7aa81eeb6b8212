#!/usr/bin/env bash
# The probe-storm benchmark (issues 2 and 18): how fast do health endpoints answer, at a fixed
# rate and at saturation, while dependencies are well, hung and refusing, and what does the
# load cost the database behind them?
#
#   PIN=1 bench/probe-storm.sh
#
# Servers measured, on the same PostgreSQL and Redis (both started here, on loopback):
#
#   - vitals' order service (examples/order-service, release build): /livez and /readyz answer
#     from a snapshot; readiness checks PostgreSQL with `SELECT 1` every 5 s in the background;
#   - `vitals demo` (release build of the `vitals` binary): the same library with simulated
#     dependencies, switched over HTTP (`POST /demo/database/hang`);
#   - the seed's Flask app (bench/flask_peer, gunicorn, sync workers): /alive and /ready (which
#     runs `SELECT 1` inline), at saturation only; it saturates far below the paced rate;
#   - the floor: HAProxy (one thread, pinned like the servers) answering `200 ok` itself with
#     `http-request return`, no backend, no check: what this machine, its kernel and the load
#     generator add to any server's latency at the same rate. A tail no server can beat here.
#
# The load generator is oha (crates.io), which paces requests on a fixed schedule (`-q RATE`)
# and, with `--latency-correction`, measures each request from when the schedule said it
# should start, so a stalled server is charged for every request it delayed (no coordinated
# omission, unlike wrk). Rows, for each vitals server:
#
#   phase      endpoint  load
#   well       /readyz   fixed RATE/s            RUNS runs, median of each column
#   well       /livez    fixed RATE/s
#   well       /readyz   saturating (no -q)
#   pg hung    /readyz   fixed RATE/s            PostgreSQL SIGSTOPped (postmaster and every
#   pg hung    /livez    fixed RATE/s            backend); the demo: database in mode "hang"
#   cache down /readyz   fixed RATE/s            Redis stopped, connections refused; the
#   cache down /livez    fixed RATE/s            demo: cache in mode "down"
#
# Each row gives requests/s, p50, p99, p99.9 and max latency (ms), non-2xx answers (503 is
# expected from /readyz while PostgreSQL hangs: the question is how fast), errors, and the load
# average when the run started. It prints a markdown table and writes it to
# bench/results/probe-storm-<date>.md (gitignored; copy the numbers you keep to BENCHMARKS.md).
#
# Settings (environment):
#   RATE=20000          the fixed rate of the paced rows
#   RUNS=3              runs per row (the table shows the median of each column)
#   DURATION=15s        length of each measured run
#   WARMUP=2s           unrecorded run before each row (0 to skip)
#   CONNECTIONS=64      oha connections (its workers: one per core it may use)
#   HANG_SETTLE=4s      after PostgreSQL is stopped or Redis refused, wait this long before
#                       measuring, so the checks are already timing out or failing
#   PIN=1               oha on CPU 0, the server under test on CPU 1 (taskset)
#   PERF_SCHED=1        record `perf sched` on the server's CPU (CPU 1 with PIN=1, else all)
#                       during the first run of each fixed-rate row, and keep
#                       `perf sched latency --sort max` beside the report: which tasks ran
#                       there, and how long the server's threads waited to run (needs perf)
#   SKIP_ORDER=1, SKIP_DEMO=1, SKIP_FLASK=1, SKIP_FAULTS=1, SKIP_FLOOR=1   leave parts out
#   ORDER_SERVICE_BIN, VITALS_BIN    run these binaries instead of building them
#   BENCH_VENV          Python virtualenv for the Flask peer (default: target/bench/venv)
#
# Needs oha (`cargo install oha`; the script installs it with cargo if missing), and root or
# sudo on a machine without PostgreSQL, Redis or curl (it installs them with apt-get).
# Everything it starts is stopped by PID when it exits, however it exits; a SIGSTOPped
# PostgreSQL is continued first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

RATE=${RATE:-20000}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
HANG_SETTLE=${HANG_SETTLE:-4s}
CORES=$(nproc)
WORKERS=${WORKERS:-$((2 * CORES + 1))}
PIN=${PIN:-}
PERF_SCHED=${PERF_SCHED:-}
SKIP_ORDER=${SKIP_ORDER:-}
SKIP_DEMO=${SKIP_DEMO:-}
SKIP_FLASK=${SKIP_FLASK:-}
SKIP_FLOOR=${SKIP_FLOOR:-}
SKIP_FAULTS=${SKIP_FAULTS:-}
BENCH_VENV=${BENCH_VENV:-$root/target/bench/venv}
server_cpu=()
client_cpu=()
oha_threads=$CORES
if [[ -n $PIN ]]; then
    server_cpu=(taskset -c 1)
    client_cpu=(taskset -c 0)
    oha_threads=1
fi

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup: a stopped PostgreSQL continued, our own processes by PID, then the servers
# (scripts/lib.sh), then the temp dir.

tmp=
APP_PIDS=()
PG_STOPPED=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PG_STOPPED[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
    for pid in "${APP_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "warning: pid $pid ignored SIGTERM for 15s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    stop_servers
    [[ -n $tmp ]] && rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until GET URL answers 200 (bounded); PID is the server, watched for an early exit.
wait_http_200() {
    local url=$1 pid=$2 log=$3 what=$4 i code
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            die "$what exited while starting (log above, from $log)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 30 "$log" >&2 || true
    die "$what did not answer 200 on $url within 60s (last status: ${code:-none})"
}

# ---------------------------------------------------------------------------------------------
# Setup

ensure_packages curl python3
if ! command -v oha >/dev/null; then
    command -v cargo >/dev/null || die "oha not found and no cargo to install it; cargo install oha"
    say "installing oha (cargo install oha)…"
    cargo install --locked oha || die "cargo install oha failed"
    export PATH=$HOME/.cargo/bin:$PATH
fi

build() {
    local package=$1 binary=$2
    command -v cargo >/dev/null || die "cargo not found; install the Rust toolchain"
    say "building $binary (release)…"
    cargo build --release -q -p "$package" --bin "$binary" ||
        die "cargo build --release -p $package failed; fix it, or skip it"
    printf '%s\n' "${CARGO_TARGET_DIR:-$root/target}/release/$binary"
}
if [[ -z $SKIP_ORDER ]]; then
    order_bin=${ORDER_SERVICE_BIN:-$(build order-service order-service)}
    [[ -x $order_bin ]] || die "$order_bin is not an executable"
fi
if [[ -z $SKIP_DEMO ]]; then
    vitals_bin=${VITALS_BIN:-$(build vitals-cli vitals)}
    [[ -x $vitals_bin ]] || die "$vitals_bin is not an executable"
fi
if [[ -z $SKIP_FLASK ]]; then
    if [[ ! -x $BENCH_VENV/bin/python ]]; then
        ensure_packages python3-venv
        say "creating a virtualenv in $BENCH_VENV…"
        python3 -m venv "$BENCH_VENV" || die "could not create a virtualenv in $BENCH_VENV"
    fi
    reqs=$here/flask_peer/requirements.txt
    if ! cmp -s "$reqs" "$BENCH_VENV/.requirements.txt"; then
        say "installing the Flask peer's requirements (pip)…"
        "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check -r "$reqs" ||
            die "pip install -r $reqs failed"
        cp "$reqs" "$BENCH_VENV/.requirements.txt"
    fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vitals-bench.XXXXXX")
chmod 755 "$tmp" # the postgres user must reach its directory inside

pg_port=$(free_port)
say "starting postgresql on 127.0.0.1:$pg_port…"
start_postgres "$tmp/pg" "$pg_port" || die "could not start postgresql (see above)"
pg_pid=${VITALS_PG_PIDS[0]}
redis_port=$(free_port)
say "starting redis on 127.0.0.1:$redis_port…"
start_redis "$redis_port" "$tmp/redis" || die "could not start redis (see above)"
pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
redis_url="redis://127.0.0.1:$redis_port"

psql_bin="$(pg_bin_dir)/psql"
[[ -x $psql_bin ]] || psql_bin=$(command -v psql) || die "psql not found; install postgresql-client"
sql() {
    # Bounded: PostgreSQL is SIGSTOPped in some rows, and a connection would wait forever.
    timeout 5 "$psql_bin" -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres \
        -d postgres -c "$1"
}
# Health-check pings as pg_stat_statements records them; its own bookkeeping is left out.
count_select1() {
    sql "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements
         WHERE query ILIKE 'SELECT \$1' AND query NOT ILIKE '%pg_stat_statements%'"
}

# ---------------------------------------------------------------------------------------------
# Faults

# PostgreSQL hangs: the postmaster and every backend stopped (a stopped postmaster alone
# leaves existing connections answering). By PID: ours, and its children.
pg_hang() {
    local pids
    mapfile -t pids < <(
        printf '%s\n' "$pg_pid"
        pgrep -P "$pg_pid" || true
    )
    PG_STOPPED=("${pids[@]}")
    kill -STOP "${pids[@]}"
}
pg_continue() {
    ((${#PG_STOPPED[@]} > 0)) && kill -CONT "${PG_STOPPED[@]}" 2>/dev/null
    PG_STOPPED=()
}
# Redis refuses connections: stopped by PID, started again on the same port afterwards.
redis_down() {
    local pid=${VITALS_REDIS_PIDS[-1]}
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
redis_up() { start_redis "$redis_port" "$tmp/redis" || die "could not restart redis"; }

# ---------------------------------------------------------------------------------------------
# Measurement

rows=()

# One oha run: `oha_run URL RATE OUT` (RATE 0: as fast as it goes); JSON into OUT.
oha_run() {
    local url=$1 rate=$2 out=$3 duration=${4:-$DURATION}
    local args=(-z "$duration" -c "$CONNECTIONS" --no-tui --output-format json -o "$out")
    ((rate > 0)) && args+=(-q "$rate" --latency-correction)
    "${client_cpu[@]}" oha "${args[@]}" "$url" >/dev/null 2>"$out.err" ||
        { cat "$out.err" >&2; die "oha failed against $url"; }
}

# `measure SERVER PHASE ENDPOINT URL RATE`: RUNS runs, one row of medians.
measure() {
    local server=$1 phase=$2 endpoint=$3 url=$4 rate=$5 run load files=()
    local load_label
    [[ $WARMUP != 0 ]] && oha_run "$url" "$rate" "$tmp/warmup.json" "$WARMUP"
    local before after
    before=$(count_select1 2>/dev/null || echo '?')
    for ((run = 1; run <= RUNS; run++)); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        local out=$tmp/oha-${#rows[@]}-$run.json
        local perf_pid=
        if [[ -n $PERF_SCHED && $run == 1 ]] && ((rate > 0)); then
            local cpus=(-a)
            [[ -n $PIN ]] && cpus=(-C 1)
            perf sched record "${cpus[@]}" -o "$tmp/sched.data" -- sleep "${DURATION%s}" \
                >/dev/null 2>&1 &
            perf_pid=$!
        fi
        oha_run "$url" "$rate" "$out"
        if [[ -n $perf_pid ]]; then
            wait "$perf_pid" || true
            mkdir -p "$here/results"
            perf sched latency -i "$tmp/sched.data" --sort max 2>/dev/null | head -30 \
                >"$here/results/sched-$(date -u +%H%M%S)-${server// /-}-${phase// /-}${endpoint//\//-}.txt" || true
        fi
        printf '%s\n' "$load" >"$out.load"
        files+=("$out")
    done
    after=$(count_select1 2>/dev/null || echo '?')
    load_label=$( ((rate > 0)) && echo "fixed $rate/s" || echo "saturating")
    local row
    row=$(python3 - "$server" "$phase" "$endpoint" "$load_label" "$before" "$after" "${files[@]}" <<'EOF'
import json, statistics, sys
server, phase, endpoint, load, before, after, *files = sys.argv[1:]
runs = []
for path in files:
    with open(path) as f:
        data = json.load(f)
    with open(path + ".load") as f:
        loadavg = f.read().strip()
    pct = data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    errors = sum(data.get("errorDistribution", {}).values())
    runs.append({
        "rps": data["summary"]["requestsPerSec"],
        "p50": pct["p50"] * 1000, "p99": pct["p99"] * 1000, "p999": pct["p99.9"] * 1000,
        "max": data["summary"]["slowest"] * 1000,
        "non2xx": sum(v for k, v in codes.items() if not k.startswith("2")),
        "errors": errors, "load": loadavg,
    })
med = lambda key: statistics.median(r[key] for r in runs)
each = lambda key, fmt: " / ".join(fmt.format(r[key]) for r in runs)
queries = "?" if "?" in (before, after) else str(int(after) - int(before))
print(f"| {server} | {phase} | `{endpoint}` | {load} | {med('rps'):,.0f} | {med('p50'):.2f} | "
      f"**{med('p99'):.2f}** | {med('p999'):.2f} | {med('max'):.1f} | "
      f"{each('p99', '{:.2f}')} | {int(med('non2xx'))} non-2xx, {int(med('errors'))} errors | "
      f"{queries} | {each('load', '{}')} |")
EOF
    )
    rows+=("$row")
    say "$row"
}

start_order_service() {
    order_port=$(free_port)
    say "starting order-service on 127.0.0.1:$order_port…"
    "${server_cpu[@]}" "$order_bin" --listen "127.0.0.1:$order_port" --database-url "$pg_url" \
        --redis-url "$redis_url" </dev/null >"$tmp/order-service.log" 2>&1 &
    order_pid=$!
    APP_PIDS+=("$order_pid")
    wait_http_200 "http://127.0.0.1:$order_port/readyz" "$order_pid" "$tmp/order-service.log" order-service
}

start_demo() {
    demo_port=$(free_port)
    say "starting vitals demo on 127.0.0.1:$demo_port…"
    # The order service's check interval, so both servers run their checks as often.
    "${server_cpu[@]}" "$vitals_bin" demo --listen "127.0.0.1:$demo_port" --interval 5s \
        </dev/null >"$tmp/demo.log" 2>&1 &
    demo_pid=$!
    APP_PIDS+=("$demo_pid")
    wait_http_200 "http://127.0.0.1:$demo_port/readyz" "$demo_pid" "$tmp/demo.log" "vitals demo"
}

# Waits (bounded) until URL answers 200 again after a fault is mended.
wait_ready_again() {
    local url=$1 i
    for ((i = 0; i < 600; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "$url did not answer 200 within 60s of mending the fault"
}

demo_switch() { curl -fsS -X POST "http://127.0.0.1:$demo_port/demo/$1/$2" >/dev/null; }

sql 'SELECT pg_stat_statements_reset()' >/dev/null || die "could not reset pg_stat_statements"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

if [[ -z $SKIP_FLOOR ]]; then
    command -v haproxy >/dev/null || die "haproxy not found (apt-get install haproxy), or SKIP_FLOOR=1"
    floor_port=$(free_port)
    cat >"$tmp/floor.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
frontend floor
    bind 127.0.0.1:$floor_port
    http-request return status 200 content-type text/plain string ok
CFG
    say "starting the floor (haproxy answering by itself) on 127.0.0.1:$floor_port…"
    "${server_cpu[@]}" haproxy -f "$tmp/floor.cfg" </dev/null >"$tmp/floor.log" 2>&1 &
    floor_pid=$!
    APP_PIDS+=("$floor_pid")
    wait_http_200 "http://127.0.0.1:$floor_port/" "$floor_pid" "$tmp/floor.log" "haproxy (floor)"
    measure "floor: haproxy return" well / "http://127.0.0.1:$floor_port/" "$RATE"
    kill "$floor_pid" 2>/dev/null || true
fi

if [[ -z $SKIP_ORDER ]]; then
    start_order_service
    base="http://127.0.0.1:$order_port"
    measure order-service well /readyz "$base/readyz" "$RATE"
    measure order-service well /livez "$base/livez" "$RATE"
    measure order-service well /readyz "$base/readyz" 0
    if [[ -z $SKIP_FAULTS ]]; then
        say "order-service: postgresql stopped (SIGSTOP)…"
        pg_hang
        sleep "${HANG_SETTLE%s}"
        measure order-service "pg hung" /readyz "$base/readyz" "$RATE"
        measure order-service "pg hung" /livez "$base/livez" "$RATE"
        pg_continue
        wait_ready_again "$base/readyz"
        say "order-service: redis refuses connections…"
        redis_down
        sleep "${HANG_SETTLE%s}"
        measure order-service "cache down" /readyz "$base/readyz" "$RATE"
        measure order-service "cache down" /livez "$base/livez" "$RATE"
        redis_up
    fi
fi

if [[ -z $SKIP_DEMO ]]; then
    start_demo
    base="http://127.0.0.1:$demo_port"
    measure "vitals demo" well /readyz "$base/readyz" "$RATE"
    measure "vitals demo" well /livez "$base/livez" "$RATE"
    measure "vitals demo" well /readyz "$base/readyz" 0
    if [[ -z $SKIP_FAULTS ]]; then
        demo_switch database hang
        sleep "${HANG_SETTLE%s}"
        measure "vitals demo" "db hung" /readyz "$base/readyz" "$RATE"
        measure "vitals demo" "db hung" /livez "$base/livez" "$RATE"
        demo_switch database up
        wait_ready_again "$base/readyz"
        demo_switch cache down
        sleep "${HANG_SETTLE%s}"
        measure "vitals demo" "cache down" /readyz "$base/readyz" "$RATE"
        measure "vitals demo" "cache down" /livez "$base/livez" "$RATE"
        demo_switch cache up
    fi
fi

if [[ -z $SKIP_FLASK ]]; then
    # initialize() refuses to become ready without its configuration in Redis.
    redis-cli -h 127.0.0.1 -p "$redis_port" SET app:config '{"source":"probe-storm"}' >/dev/null ||
        die "could not set app:config in redis"
    flask_port=$(free_port)
    say "starting the Flask peer under gunicorn ($WORKERS sync workers) on 127.0.0.1:$flask_port…"
    (cd "$here/flask_peer" && DATABASE_URL=$pg_url REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port \
        exec "${server_cpu[@]}" "$BENCH_VENV/bin/gunicorn" --workers "$WORKERS" --worker-class sync \
        --bind "127.0.0.1:$flask_port" --log-level warning app:app \
        </dev/null >"$tmp/gunicorn.log" 2>&1) &
    gunicorn_pid=$!
    APP_PIDS+=("$gunicorn_pid")
    wait_http_200 "http://127.0.0.1:$flask_port/ready" "$gunicorn_pid" "$tmp/gunicorn.log" "gunicorn (flask peer)"
    measure "flask + gunicorn" well /alive "http://127.0.0.1:$flask_port/alive" 0
    measure "flask + gunicorn" well /ready "http://127.0.0.1:$flask_port/ready" 0
fi

# ---------------------------------------------------------------------------------------------
# Report

pg_version=$(sql 'SHOW server_version' || echo '?')
redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
oha_version=$(oha --version 2>/dev/null | awk '{ print $2 }' || true)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')

report=$(
    cat <<EOF
# Probe storm, $stamp

Commit \`$commit\`; $CORES cores ($cpu); PostgreSQL $pg_version, Redis $redis_version, oha
$oha_version. Each row: $RUNS runs of \`oha -z $DURATION -c $CONNECTIONS\` (fixed-rate rows:
\`-q RATE --latency-correction\`) after a $WARMUP warm-up; every figure is the median of the
runs, the p99 of each run is listed too. Load average (1 min) when each run started is in the
last column, and was $load_before before the first (anything above ~0.5 means something else
was using the cores: rerun on a quiet machine).${PIN:+ Pinned: oha on CPU 0, the server under test on CPU 1 (PIN=1).}
\`SELECT 1\` is what PostgreSQL executed during the row's runs (pg_stat_statements).

| server | phase | endpoint | load | requests/s | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | p99 of each run | answers | \`SELECT 1\` | load average per run |
| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |
$(printf '%s\n' "${rows[@]}")

Phases: *well* — every dependency up; *pg hung* — PostgreSQL SIGSTOPped (postmaster and
backends) $HANG_SETTLE before the runs, so the database check is timing out throughout
(\`/readyz\` answers 503, the question is how fast); *cache down* — Redis stopped (connections
refused); the demo's are its simulated dependencies switched to \`hang\` and \`down\`.
EOF
)
mkdir -p "$here/results"
file=$here/results/probe-storm-$(date -u +%Y-%m-%d-%H%M%S).md
printf '%s\n' "$report" >"$file"
printf '%s\n\n' "$report"
say "written to ${file#"$root"/}"
