#!/usr/bin/env bash
# The probe-storm benchmark: how fast do health endpoints answer under load, and what does the
# load cost the database behind them?
#
#   bench/probe-storm.sh
#
# Runs, side by side on the same PostgreSQL and Redis (both started here, on loopback):
#
#   - vitals' order service (examples/order-service, release build): /livez and /readyz, which
#     answer from a snapshot; readiness checks PostgreSQL with `SELECT 1` every 5 s in the
#     background, whatever the probe rate;
#   - the seed's Flask "production health checks" app (bench/flask_peer) under gunicorn with
#     sync workers, as its users would serve it: /alive, and /ready, which runs `SELECT 1` (and
#     a Redis PING) inline on every request.
#
# For each endpoint it runs `wrk --latency` and records requests/s, p50 and p99 latency, errors,
# and how many `SELECT 1` PostgreSQL executed during that run (from pg_stat_statements, where it
# is normalized to `SELECT $1`). It prints a markdown table and writes it to
# bench/results/probe-storm-<date>.md (gitignored; copy the numbers you keep into BENCHMARKS.md).
#
# Settings (environment):
#   DURATION=15s        length of each measured wrk run
#   WARMUP=2s           unrecorded wrk run before each measured one (0 to skip)
#   THREADS=2           wrk threads
#   CONNECTIONS=64      wrk connections
#   RATE=20000          offered load of the paced runs of vitals' endpoints (0 to skip them)
#   PACE_MS=3           wait per connection between a response and the next request in those
#   WORKERS=2*cores+1   gunicorn sync workers (gunicorn's own recommendation)
#   PIN=1               put the load generator on CPU 0 and the servers under test on CPU 1
#                       (taskset), so the numbers measure the server rather than the two
#                       fighting over both cores
#   SKIP_VITALS=1       leave out the order service (e.g. while it does not build)
#   SKIP_FLASK=1        leave out the Flask peer
#   ORDER_SERVICE_BIN   run this binary instead of building examples/order-service
#   BENCH_VENV          Python virtualenv for the Flask peer (default: target/bench/venv)
#
# Needs root or sudo on a machine without wrk, PostgreSQL or Redis (it installs them with
# apt-get). Everything it starts is stopped by PID when it exits, however it exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
RATE=${RATE:-20000}
PACE_MS=${PACE_MS:-3}
CORES=$(nproc)
WORKERS=${WORKERS:-$((2 * CORES + 1))}
SKIP_VITALS=${SKIP_VITALS:-}
PIN=${PIN:-}
server_cpu=()
client_cpu=()
if [[ -n $PIN ]]; then
    server_cpu=(taskset -c 1)
    client_cpu=(taskset -c 0)
fi
SKIP_FLASK=${SKIP_FLASK:-}
BENCH_VENV=${BENCH_VENV:-$root/target/bench/venv}

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup: our own processes by PID, then the servers (scripts/lib.sh), then the temp dir.

tmp=
APP_PIDS=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${APP_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        # SIGTERM: gunicorn's graceful stop (it stops its workers); the order service drains.
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

ensure_packages wrk curl

# Build and install first, so that the servers are not left idle meanwhile.
if [[ -z $SKIP_VITALS ]]; then
    if [[ -n ${ORDER_SERVICE_BIN:-} ]]; then
        order_bin=$ORDER_SERVICE_BIN
        [[ -x $order_bin ]] || die "ORDER_SERVICE_BIN=$order_bin is not an executable"
    else
        command -v cargo >/dev/null || die "cargo not found; install the Rust toolchain"
        say "building order-service (release)…"
        cargo build --release -q -p order-service ||
            die "cargo build --release -p order-service failed; fix it, or run with SKIP_VITALS=1"
        order_bin=${CARGO_TARGET_DIR:-$root/target}/release/order-service
        [[ -x $order_bin ]] || die "built, but $order_bin is missing"
    fi
fi
if [[ -z $SKIP_FLASK ]]; then
    if [[ ! -x $BENCH_VENV/bin/python ]]; then
        python=$(command -v python3 || true)
        if [[ -z $python ]] || ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
            ensure_packages python3 python3-venv
            python=/usr/bin/python3
        fi
        say "creating a virtualenv in $BENCH_VENV…"
        "$python" -m venv "$BENCH_VENV" || die "could not create a virtualenv in $BENCH_VENV"
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
redis_port=$(free_port)
say "starting redis on 127.0.0.1:$redis_port…"
start_redis "$redis_port" "$tmp/redis" || die "could not start redis (see above)"
pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
redis_url="redis://127.0.0.1:$redis_port"

psql_bin="$(pg_bin_dir)/psql"
[[ -x $psql_bin ]] || psql_bin=$(command -v psql) || die "psql not found; install postgresql-client"
sql() {
    "$psql_bin" -X -q -t -A -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres \
        -d postgres -c "$1"
}
# Health-check pings as pg_stat_statements records them; its own bookkeeping is left out.
count_select1() {
    sql "SELECT COALESCE(SUM(calls), 0)::bigint FROM pg_stat_statements
         WHERE query ILIKE 'SELECT \$1' AND query NOT ILIKE '%pg_stat_statements%'"
}

targets=() # "label|endpoint|url"

if [[ -z $SKIP_VITALS ]]; then
    vitals_port=$(free_port)
    say "starting order-service on 127.0.0.1:$vitals_port…"
    "${server_cpu[@]}" "$order_bin" --listen "127.0.0.1:$vitals_port" --database-url "$pg_url" \
        --redis-url "$redis_url" </dev/null >"$tmp/order-service.log" 2>&1 &
    order_pid=$!
    APP_PIDS+=("$order_pid")
    wait_http_200 "http://127.0.0.1:$vitals_port/livez" "$order_pid" "$tmp/order-service.log" order-service
    wait_http_200 "http://127.0.0.1:$vitals_port/readyz" "$order_pid" "$tmp/order-service.log" order-service
    targets+=("vitals|/livez|http://127.0.0.1:$vitals_port/livez")
    targets+=("vitals|/readyz|http://127.0.0.1:$vitals_port/readyz")
fi

if [[ -z $SKIP_FLASK ]]; then
    # initialize() refuses to become ready without its configuration in Redis.
    redis-cli -h 127.0.0.1 -p "$redis_port" SET app:config '{"source":"probe-storm"}' >/dev/null ||
        die "could not set app:config in redis"
    flask_port=$(free_port)
    say "starting the Flask peer under gunicorn ($WORKERS sync workers) on 127.0.0.1:$flask_port…"
    # No --preload: each worker imports the app after the fork and so opens its own psycopg2
    # connection, as the seed's module-global connection needs.
    (cd "$here/flask_peer" && DATABASE_URL=$pg_url REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port \
        exec "${server_cpu[@]}" "$BENCH_VENV/bin/gunicorn" --workers "$WORKERS" --worker-class sync \
        --bind "127.0.0.1:$flask_port" --log-level warning app:app \
        </dev/null >"$tmp/gunicorn.log" 2>&1) &
    gunicorn_pid=$!
    APP_PIDS+=("$gunicorn_pid")
    wait_http_200 "http://127.0.0.1:$flask_port/ready" "$gunicorn_pid" "$tmp/gunicorn.log" "gunicorn (flask peer)"
    # One worker answering is not all of them initialized: each worker's initialize() runs its
    # own SELECT 1, which must not land in the first measured run. After it, each worker's
    # connection stays "idle in transaction" (nothing commits), which is what we wait for.
    for ((i = 0; i < 600; i++)); do
        ready=$(sql "SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'client backend' AND state = 'idle in transaction'")
        ((ready >= WORKERS)) && break
        sleep 0.1
    done
    ((ready >= WORKERS)) || die "only $ready of $WORKERS gunicorn workers connected within 60s (log: $tmp/gunicorn.log)"
    targets+=("flask + gunicorn|/alive|http://127.0.0.1:$flask_port/alive")
    targets+=("flask + gunicorn|/ready|http://127.0.0.1:$flask_port/ready")
fi

((${#targets[@]} > 0)) || die "nothing to measure (both SKIP_VITALS and SKIP_FLASK are set)"

# ---------------------------------------------------------------------------------------------
# Measurement

# wrk prints latencies as 123.45us, 1.23ms, 1.02s, 2.00m; this turns one into milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n
    }'
}

# One measured run: `measure LABEL ENDPOINT URL CONNECTIONS LOAD [WRK ARGS...]` appends a row.
measure() {
    local label=$1 endpoint=$2 url=$3 conns=$4 load=$5
    shift 5
    if [[ $WARMUP != 0 ]]; then
        "${client_cpu[@]}" wrk -t"$THREADS" -c"$conns" -d"$WARMUP" "$@" "$url" >/dev/null 2>&1 || true
    fi
    say "wrk -t$THREADS -c$conns -d$DURATION --latency $* $url"
    local before after out
    before=$(count_select1)
    out=$tmp/wrk-$((${#rows[@]} + 1)).txt
    "${client_cpu[@]}" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "$@" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed against $url"; }
    after=$(count_select1)

    local rps p50 p99 secs non2xx sockerr queries qps errors
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    # "1234 requests in 15.00s, ..." gives the run's real length.
    secs=$(awk '/ requests in / { s = $4; sub(/,$/, "", s); print s }' "$out")
    [[ -n $rps && -n $p50 && -n $p99 && -n $secs ]] ||
        { cat "$out" >&2; die "could not read wrk's output for $url (shown above)"; }
    p50=$(to_ms "$p50")
    p99=$(to_ms "$p99")
    secs=$(to_ms "$secs")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/Socket errors:/ { n = 0; for (i = 4; i <= NF; i += 2) { v = $i; sub(/,$/, "", v); n += v } print n }' "$out")
    queries=$((after - before))
    qps=$(awk -v q="$queries" -v ms="$secs" 'BEGIN { printf "%.1f", (ms > 0 ? q * 1000 / ms : 0) }')
    errors="${non2xx:-0} non-2xx, ${sockerr:-0} socket"
    rows+=("| $label | \`$endpoint\` | $load, $conns conns | $rps | $p50 | $p99 | $errors | $queries | $qps |")
    say "  $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors, $queries × SELECT 1 ($qps/s)"
}

sql 'SELECT pg_stat_statements_reset()' >/dev/null || die "could not reset pg_stat_statements"
# Anything else running (a build, say) skews every row; the report says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
for target in "${targets[@]}"; do
    IFS='|' read -r label endpoint url <<<"$target"
    measure "$label" "$endpoint" "$url" "$CONNECTIONS" "as fast as it goes"
done

# Paced runs: the target is a /readyz p99 under 1 ms at 20,000 req/s, a load short of
# saturation. wrk2 (which paces requests on a fixed schedule) is not packaged by Debian, so
# plain wrk is paced with its Lua `delay()` hook: each connection waits PACE_MS between a
# response and its next request, and wrk's latency clock starts when a request is sent. With
# RATE × (PACE_MS + 0.8) / 1000 connections the offered load is about RATE: each connection's
# cycle is the pause plus the response time plus wrk's timer slack, about 0.8 ms together as
# seen here. The achieved rate is what the table shows; it is the number to quote. Only the vitals endpoints get a paced run:
# the Flask peer saturates long before such rates, so pacing it would repeat the rows above.
paced=0
if ((RATE > 0)); then
    printf 'function delay()\n  return %d\n end\n' "$PACE_MS" >"$tmp/pace.lua"
    pace_conns=$(((RATE * (PACE_MS * 10 + 8) + 9999) / 10000))
    for target in "${targets[@]}"; do
        IFS='|' read -r label endpoint url <<<"$target"
        [[ $label == vitals ]] || continue
        measure "$label" "$endpoint" "$url" "$pace_conns" "paced to ~$RATE/s" -s "$tmp/pace.lua"
        paced=1
    done
fi

# ---------------------------------------------------------------------------------------------
# Report

pg_version=$(sql 'SHOW server_version' || echo '?')
redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
wrk_version=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')

report=$(
    cat <<EOF
# Probe storm, $stamp

Commit \`$commit\`; $CORES cores ($cpu); PostgreSQL $pg_version, Redis $redis_version,
wrk $wrk_version. Each row: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` on loopback
after a warm-up run of $WARMUP. Flask peer: gunicorn, $WORKERS sync workers, one psycopg2 connection per
worker. Load average before the first run: $load_before (anything above ~0.5 means
something else was using the cores; rerun on a quiet machine).${PIN:+ Pinned: wrk on CPU 0, the servers under test on CPU 1 (PIN=1).}

| server | endpoint | load | requests/s | p50 (ms) | p99 (ms) | errors | \`SELECT 1\` seen by PostgreSQL | queries/s |
| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

Read with care:

- wrk, the server under test, PostgreSQL and Redis all share these $CORES cores, so every
  number here is lower than either server would reach alone; the comparison is fair only
  because both servers are measured the same way on the same machine.
- wrk measures latency from when a request is actually sent (it is closed-loop), so under
  saturation its p99 understates what a client on a fixed schedule would see (coordinated
  omission). The paced rows ($( ((paced)) && echo "each connection waits ${PACE_MS} ms between requests" || echo "none in this run")) load the server short of
  saturation instead; wrk2 is not packaged by Debian, so they are not a true fixed-rate
  schedule either.
- gunicorn's sync workers close the connection after each response, so every Flask request
  also pays a TCP handshake; that is how its users run it.
- \`SELECT 1\` counts come from pg_stat_statements (normalized to \`SELECT \$1\`) between the
  start and end of each run.
  Both servers stay up for the whole benchmark, so the order service's background readiness
  check (one \`SELECT 1\` every 5 s, about 0.2/s) is in every row's count, the Flask rows' too.
EOF
)
mkdir -p "$here/results"
file=$here/results/probe-storm-$(date -u +%Y-%m-%d-%H%M%S).md
printf '%s\n' "$report" >"$file"
printf '%s\n\n' "$report"
say "written to ${file#"$root"/}"
