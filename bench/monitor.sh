#!/usr/bin/env bash
# The monitor benchmark (issue 3): how many checks and heartbeats `vitals serve` keeps up
# with on this machine, what they cost, and HAProxy doing the same checks beside it.
#
#   bench/monitor.sh
#
# Four measurements, each against the release build of the `vitals` binary:
#
#   1. active HTTP checks: TARGETS http targets at INTERVAL against a few fast local HTTP
#      servers (crates/monitor/examples/bench_load.rs, one thread); checks per second (from
#      the monitor's `vitals_checks_total` and, independently, from the servers' request
#      counts), p99 schedule lag (from the `vitals_scheduler_lag_seconds` histogram, over the
#      measured window only), and CPU time per 1,000 checks (utime + stime of the monitor from
#      /proc/<pid>/stat over the window);
#   2. HAProxy (the distribution's package) health-checking the same number of servers on the
#      same servers at the same interval (`option httpchk`, `check inter`), measured the same
#      way, right after (not at the same time: on two cores they would take CPU from each
#      other and from the HTTP servers);
#   3. heartbeats ingested per second: authenticated UDP datagrams from one sender thread
#      (bench_load udp, 64 datagrams to a sendmmsg) over UDP_SOURCES sources, and HTTP pings
#      (`wrk` with a Lua script cycling over the ids of /ping/<id>), counted by the monitor's
#      `vitals_heartbeats_total`; then the same wrk against HAProxy answering 200 by itself,
#      pinned like the monitor: the ceiling of any HTTP server on this machine;
#   4. memory per idle target: RSS of `vitals serve` with IDLE_TARGETS heartbeat targets
#      (period 1h) minus RSS with one, divided by IDLE_TARGETS - 1; /proc/<pid>/smaps_rollup
#      of the big one is kept in the results.
#
# It prints a markdown report and writes it to bench/results/monitor-<date>.md (gitignored;
# copy the numbers you keep into BENCHMARKS.md). The machine's load (`uptime`) is recorded
# before each part: on a shared machine, re-run when it is quiet.
#
# Settings (environment):
#   TARGETS=10000        active HTTP targets (and HAProxy servers)
#   INTERVAL=1s          their check interval (HAProxy: `inter`)
#   TIMEOUT=500ms        their check timeout (HAProxy: `timeout check`)
#   PORTS=4              HTTP server ports for each of the monitor and HAProxy
#   WARMUP=10            seconds after start before measuring (first checks, jitter settling)
#   MEASURE=30           seconds measured
#   UDP_SOURCES=1000     heartbeat sources for the UDP run
#   UDP_SENDERS=1        sender processes, each with its share of the sources
#   UDP_SECONDS=10       length of the UDP run
#   PING_TARGETS=1000    heartbeat targets the HTTP pings cycle over
#   PING_DURATION=10s    length of the wrk run; PING_CONNECTIONS=32
#   MAX_CONCURRENCY=1024 the monitor's server.max_concurrency in the active part (checks in flight)
#   IDLE_TARGETS=100000  targets of the memory measurement
#   PIN=1                monitor / HAProxy on CPU 1, load (HTTP servers, sender, wrk) on CPU 0
#   PROFILE=1            also `perf record -g` the monitor over the active-check window and keep
#                        `perf report` (self time, top symbols) beside the results (perf adds
#                        overhead: take the figures from a run without it)
#   SKIP_ACTIVE=1 SKIP_HAPROXY=1 SKIP_HEARTBEATS=1 SKIP_MEMORY=1   leave parts out
#   VITALS_BIN, BENCH_LOAD_BIN   use these binaries instead of building them
#
# Needs root or sudo on a machine without wrk or haproxy (it installs them with apt-get).
# Everything it starts is stopped by PID when it exits, however it exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

TARGETS=${TARGETS:-10000}
INTERVAL=${INTERVAL:-1s}
TIMEOUT=${TIMEOUT:-500ms}
PORTS=${PORTS:-4}
WARMUP=${WARMUP:-10}
MEASURE=${MEASURE:-30}
UDP_SOURCES=${UDP_SOURCES:-1000}
UDP_SECONDS=${UDP_SECONDS:-10}
UDP_SENDERS=${UDP_SENDERS:-1}
PING_TARGETS=${PING_TARGETS:-1000}
MAX_CONCURRENCY=${MAX_CONCURRENCY:-1024}
PING_DURATION=${PING_DURATION:-10s}
PING_CONNECTIONS=${PING_CONNECTIONS:-32}
IDLE_TARGETS=${IDLE_TARGETS:-100000}
PIN=${PIN:-}
server_cpu=()
client_cpu=()
if [[ -n $PIN ]]; then
    server_cpu=(taskset -c 1)
    client_cpu=(taskset -c 0)
fi
CLK_TCK=$(getconf CLK_TCK)

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup: every process we started, by PID.

tmp=
PIDS=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    [[ -n $tmp ]] && rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# SIGTERM, up to 15 s, then SIGKILL; waits for the process either way.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
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
}

# Waits until GET URL answers 200 (bounded by TENTHS tenths of a second); PID is the server,
# watched for an early exit.
wait_http_200() {
    local url=$1 pid=$2 log=$3 what=$4 tenths=${5:-600} i code
    for ((i = 0; i < tenths; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            die "$what exited while starting (log above, from $log)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 30 "$log" >&2 || true
    die "$what did not answer 200 on $url within $((tenths / 10))s (last status: ${code:-none})"
}

# utime + stime of PID, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted after the
# command name, which may contain spaces).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # shellcheck disable=SC2086 # split into fields on purpose
    set -- $stat
    echo $((${12} + ${13}))
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }

# The sum of the samples of metric lines matching the extended regex PATTERN in FILE (0 when
# none does: a counter series appears with its first increment).
metric_sum() {
    { grep -E "$2" "$1" || true; } | awk '{ s += $NF } END { printf "%.0f\n", s }'
}

# The p99 of a Prometheus histogram over the interval between two scrapes (FILE0, FILE1),
# interpolated linearly within the bucket that holds it; in milliseconds.
histogram_p99_ms() {
    python3 - "$1" "$2" "$3" <<'EOF'
import re, sys
name, before, after = sys.argv[1], sys.argv[2], sys.argv[3]
pat = re.compile(r'^' + re.escape(name) + r'_bucket\{le="([^"]+)"\} (\S+)')
def buckets(path):
    out = {}
    for line in open(path):
        m = pat.match(line)
        if m:
            out[float(m.group(1))] = float(m.group(2))
    return out
b0, b1 = buckets(before), buckets(after)
les = sorted(b1)
delta = [(le, b1[le] - b0.get(le, 0.0)) for le in les]
total = delta[-1][1] if delta else 0
if total <= 0:
    print("n/a"); sys.exit()
want = 0.99 * total
prev_le, prev_n = 0.0, 0.0
for le, n in delta:
    if n >= want:
        if le == float("inf"):
            print(f"> {prev_le * 1000:.1f}"); sys.exit()
        frac = (want - prev_n) / (n - prev_n) if n > prev_n else 1.0
        print(f"{(prev_le + frac * (le - prev_le)) * 1000:.1f}"); sys.exit()
    prev_le, prev_n = le, n
EOF
}

# The sum of the request counts of the bench_load ports given.
served() {
    local total=0 port n
    for port in "$@"; do
        n=$(curl -s --max-time 5 "http://127.0.0.1:$port/__count") || die "no count from port $port"
        total=$((total + n))
    done
    echo "$total"
}

load() { uptime | sed 's/.*load average: //'; }

# Sends COMMAND to the HAProxy admin socket SOCKET and prints the answer.
haproxy_cmd() {
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
while chunk := s.recv(65536):
    sys.stdout.write(chunk.decode(errors="replace"))
' "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
# Setup

ensure_packages wrk curl haproxy python3 bc

if [[ -z ${VITALS_BIN:-} || -z ${BENCH_LOAD_BIN:-} ]]; then
    command -v cargo >/dev/null || die "cargo not found; install the Rust toolchain"
    say "building vitals and bench_load (release)…"
    cargo build --release -q -p vitals-cli || die "cargo build --release -p vitals-cli failed"
    cargo build --release -q -p vitals-monitor --example bench_load ||
        die "cargo build --release -p vitals-monitor --example bench_load failed"
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
VITALS_BIN=${VITALS_BIN:-$target_dir/release/vitals}
BENCH_LOAD_BIN=${BENCH_LOAD_BIN:-$target_dir/release/examples/bench_load}
[[ -x $VITALS_BIN ]] || die "$VITALS_BIN is not an executable"
[[ -x $BENCH_LOAD_BIN ]] || die "$BENCH_LOAD_BIN is not an executable"
HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vitals-bench-monitor.XXXXXX")
report=$tmp/report.md
results_dir=$here/results
mkdir -p "$results_dir"
results=$results_dir/monitor-$(date -u +%Y-%m-%d-%H%M%S).md

{
    echo "# Monitor benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(uname -sr)"
    echo "- vitals: $("$VITALS_BIN" --version 2>/dev/null || echo '?'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $("$HAPROXY_BIN" -v | head -1)"
    echo "- command: \`$(printf '%s=%q ' TARGETS "$TARGETS" INTERVAL "$INTERVAL" PORTS "$PORTS" MEASURE "$MEASURE" PIN "$PIN")bench/monitor.sh\`"
    if [[ -n $PIN ]]; then
        echo "- pinning: monitor and HAProxy on CPU 1, load generators on CPU 0 (taskset)"
    else
        echo "- pinning: none (everything shares both cores)"
    fi
    echo
} >"$report"

# Starts `vitals serve` on CONFIG; sets MONITOR_PID and MONITOR_URL.
start_monitor() {
    local config=$1 port=$2 log=$3
    "${server_cpu[@]}" "$VITALS_BIN" serve --config "$config" </dev/null >"$log" 2>&1 &
    MONITOR_PID=$!
    PIDS+=("$MONITOR_PID")
    MONITOR_URL=http://127.0.0.1:$port
    wait_http_200 "$MONITOR_URL/livez" "$MONITOR_PID" "$log" "vitals serve" 3000
}

server_header() {
    local port=$1 dir=$2 extra=${3:-}
    cat <<EOF
[server]
listen = "127.0.0.1:$port"
data_dir = "$dir"
$extra
EOF
}

# ---------------------------------------------------------------------------------------------
# 1 and 2: active HTTP checks, vitals then HAProxy, against the same servers.

if [[ -z ${SKIP_ACTIVE:-} || -z ${SKIP_HAPROXY:-} ]]; then
    vitals_ports=()
    haproxy_ports=()
    for ((i = 0; i < PORTS; i++)); do
        vitals_ports+=("$(free_port)")
        haproxy_ports+=("$(free_port)")
    done
    # Unpinned, the HTTP servers get a thread per core, as the checkers do.
    server_threads=$(nproc)
    [[ -n $PIN ]] && server_threads=1
    THREADS=$server_threads "${client_cpu[@]}" "$BENCH_LOAD_BIN" serve "${vitals_ports[@]}" "${haproxy_ports[@]}" \
        </dev/null >"$tmp/targets.log" 2>&1 &
    targets_pid=$!
    PIDS+=("$targets_pid")
    for port in "${vitals_ports[@]}" "${haproxy_ports[@]}"; do
        wait_http_200 "http://127.0.0.1:$port/__count" "$targets_pid" "$tmp/targets.log" bench_load
    done
    {
        echo "## Active HTTP checks: $TARGETS targets every $INTERVAL (timeout $TIMEOUT), $PORTS local HTTP servers"
        echo
        echo "Measured over ${MEASURE} s after ${WARMUP} s of warm-up. Checks/s from the checker's own"
        echo "count and from the requests the HTTP servers answered; CPU is the checker's utime + stime."
        echo
        echo "| checker | load before | checks/s (own count) | checks/s (served) | p99 schedule lag | CPU s per 1,000 checks | CPU share |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    } >>"$report"
fi

# Measures PID over MEASURE seconds: sets CPU_S (seconds), ELAPSED, SERVED (requests on PORTS).
measure_window() {
    local pid=$1
    shift
    local served0 served1 t0 t1 c0 c1
    served0=$(served "$@")
    t0=$(now)
    c0=$(cpu_ticks "$pid")
    sleep "$MEASURE"
    c1=$(cpu_ticks "$pid")
    t1=$(now)
    served1=$(served "$@")
    ELAPSED=$(echo "$t1 - $t0" | bc -l)
    CPU_S=$(echo "($c1 - $c0) / $CLK_TCK" | bc -l)
    SERVED=$((served1 - served0))
}

if [[ -z ${SKIP_ACTIVE:-} ]]; then
    port=$(free_port)
    config=$tmp/active.toml
    {
        server_header "$port" "$tmp/data-active" "max_concurrency = $MAX_CONCURRENCY"
        printf '\n[defaults]\ninterval = "%s"\ntimeout = "%s"\n' "$INTERVAL" "$TIMEOUT"
        for ((i = 0; i < TARGETS; i++)); do
            printf '\n[[target]]\nid = "t%06d"\nkind = "http"\nurl = "http://127.0.0.1:%s/t/%06d"\n' \
                "$i" "${vitals_ports[i % PORTS]}" "$i"
        done
    } >"$config"
    before=$(load)
    say "vitals: $TARGETS http targets every $INTERVAL; warming up ${WARMUP}s…"
    start_monitor "$config" "$port" "$tmp/active.log"
    sleep "$WARMUP"
    curl -s --max-time 30 "$MONITOR_URL/metrics" >"$tmp/m0" || die "no /metrics"
    say "measuring ${MEASURE}s…"
    if [[ -n ${PROFILE:-} ]]; then
        ensure_packages linux-perf
        perf record -q -F 499 -g -o "$tmp/perf.data" -p "$MONITOR_PID" -- sleep "$MEASURE" \
            >/dev/null 2>&1 &
        PIDS+=("$!")
    fi
    measure_window "$MONITOR_PID" "${vitals_ports[@]}"
    curl -s --max-time 30 "$MONITOR_URL/metrics" >"$tmp/m1" || die "no /metrics"
    if [[ -n ${PROFILE:-} ]]; then
        wait "${PIDS[-1]}" 2>/dev/null || true
        profile=${results%.md}-perf.txt
        cp "$tmp/perf.data" "${results%.md}-perf.data"
        {
            echo "# by thread"
            perf report -i "$tmp/perf.data" --stdio --no-children --sort comm 2>/dev/null |
                grep -E '^ +[0-9]'
            echo "# self time by symbol"
            perf report -i "$tmp/perf.data" --stdio --no-children --sort dso,symbol \
                --percent-limit 0.5 -g none 2>/dev/null | grep -E '^ +[0-9]'
        } >"$profile" || true
        say "profile: $profile"
    fi
    checks=$(($(metric_sum "$tmp/m1" '^vitals_checks_total ') - $(metric_sum "$tmp/m0" '^vitals_checks_total ')))
    dropped=$(($(metric_sum "$tmp/m1" '^vitals_dropped_records_total ') - $(metric_sum "$tmp/m0" '^vitals_dropped_records_total ')))
    p99=$(histogram_p99_ms vitals_scheduler_lag_seconds "$tmp/m0" "$tmp/m1")
    rate=$(echo "$checks / $ELAPSED" | bc -l)
    served_rate=$(echo "$SERVED / $ELAPSED" | bc -l)
    per_k=$(echo "$CPU_S * 1000 / $SERVED" | bc -l)
    share=$(echo "100 * $CPU_S / $ELAPSED" | bc -l)
    printf '| vitals serve | %s | %.0f | %.0f | %s ms | %.3f | %.0f %% of a core |\n' \
        "$before" "$rate" "$served_rate" "$p99" "$per_k" "$share" >>"$report"
    # The lag's parts (issue 10): the scheduler handing a check out late, a check task
    # waiting for its first poll, a check waiting for a concurrency permit.
    parts=""
    for part in handout queue permit; do
        parts+="$part $(histogram_p99_ms "vitals_scheduler_${part}_seconds" "$tmp/m0" "$tmp/m1") ms, "
    done
    vitals_note="vitals: results not stored because storage fell behind during the window: $dropped; p99 of the lag's parts: ${parts%, }; RSS $(awk '/VmRSS/ { print $2 " " $3 }' "/proc/$MONITOR_PID/status")."
    stop_pid "$MONITOR_PID"
fi

if [[ -z ${SKIP_HAPROXY:-} ]]; then
    config=$tmp/haproxy.cfg
    {
        printf 'global\n    maxconn 4096\n    stats socket %s/haproxy.sock level admin\n' "$tmp"
        printf 'defaults\n    mode http\n    timeout connect %s\n    timeout check %s\n' "$TIMEOUT" "$TIMEOUT"
        printf '    timeout client 5s\n    timeout server 5s\n'
        printf 'backend be\n    option httpchk GET /health\n    default-server check inter %s\n' "$INTERVAL"
        for ((i = 0; i < TARGETS; i++)); do
            printf '    server s%06d 127.0.0.1:%s\n' "$i" "${haproxy_ports[i % PORTS]}"
        done
    } >"$config"
    "$HAPROXY_BIN" -c -q -f "$config" || die "haproxy refused the generated config $config"
    before=$(load)
    say "haproxy: $TARGETS servers with check inter $INTERVAL; warming up ${WARMUP}s…"
    "${server_cpu[@]}" "$HAPROXY_BIN" -db -f "$config" </dev/null >"$tmp/haproxy.log" 2>&1 &
    haproxy_pid=$!
    PIDS+=("$haproxy_pid")
    sleep "$WARMUP"
    kill -0 "$haproxy_pid" 2>/dev/null || { tail -n 30 "$tmp/haproxy.log" >&2; die "haproxy exited"; }
    say "measuring ${MEASURE}s…"
    measure_window "$haproxy_pid" "${haproxy_ports[@]}"
    served_rate=$(echo "$SERVED / $ELAPSED" | bc -l)
    per_k=$(echo "$CPU_S * 1000 / $SERVED" | bc -l)
    share=$(echo "100 * $CPU_S / $ELAPSED" | bc -l)
    up=$(haproxy_cmd "$tmp/haproxy.sock" "show stat" |
        awk -F, '$1 == "be" && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }' || echo '?')
    printf '| HAProxy | %s | – | %.0f | – | %.3f | %.0f %% of a core |\n' \
        "$before" "$served_rate" "$per_k" "$share" >>"$report"
    haproxy_note="HAProxy: $up of $TARGETS servers UP at the end; RSS $(awk '/VmRSS/ { print $2 " " $3 }' "/proc/$haproxy_pid/status")."
    stop_pid "$haproxy_pid"
fi

if [[ -z ${SKIP_ACTIVE:-} || -z ${SKIP_HAPROXY:-} ]]; then
    {
        echo
        [[ -n ${vitals_note:-} ]] && echo "$vitals_note"
        [[ -n ${haproxy_note:-} ]] && echo "$haproxy_note"
        echo
    } >>"$report"
    stop_pid "$targets_pid"
fi

# ---------------------------------------------------------------------------------------------
# 3: heartbeats.

if [[ -z ${SKIP_HEARTBEATS:-} ]]; then
    port=$(free_port)
    udp_port=$(free_port)
    config=$tmp/heartbeats.toml
    sources=$((UDP_SOURCES > PING_TARGETS ? UDP_SOURCES : PING_TARGETS))
    {
        # Ingestion, not the per-id rate (issue 11), is measured: no rate. HTTP pings carry
        # the targets' ping key (a UDP-keyed target refuses unkeyed HTTP pings).
        server_header "$port" "$tmp/data-heartbeats" "udp_listen = \"127.0.0.1:$udp_port\"
ping_rate = 0"
        for ((i = 0; i < sources; i++)); do
            printf '\n[[target]]\nid = "hb-%06d"\nkind = "heartbeat"\nperiod = "1h"\nudp_key = "%s"\nping_key = "bench-ping-key-0123456789"\n' \
                "$i" "$("$BENCH_LOAD_BIN" key "$i")"
        done
    } >"$config"
    start_monitor "$config" "$port" "$tmp/heartbeats.log"
    {
        echo "## Heartbeats ingested"
        echo
        echo "| transport | load before | sent | accepted/s | rejected | CPU share of the monitor |"
        echo "| --- | --- | ---: | ---: | ---: | ---: |"
    } >>"$report"

    before=$(load)
    say "udp: $UDP_SENDERS sender(s), $UDP_SOURCES sources, ${UDP_SECONDS}s…"
    curl -s "$MONITOR_URL/metrics" >"$tmp/h0"
    c0=$(cpu_ticks "$MONITOR_PID")
    t0=$(now)
    senders=()
    per_sender=$((UDP_SOURCES / UDP_SENDERS))
    for ((k = 0; k < UDP_SENDERS; k++)); do
        "${client_cpu[@]}" "$BENCH_LOAD_BIN" udp "127.0.0.1:$udp_port" "$per_sender" "$UDP_SECONDS" \
            $((k * per_sender)) >"$tmp/udp-$k.txt" &
        senders+=($!)
    done
    for pid in "${senders[@]}"; do
        wait "$pid" || die "a UDP sender failed"
    done
    sent=$(cat "$tmp"/udp-*.txt | awk '{ s += $2 } END { print s }')
    sleep 1 # let the listener drain its socket buffer
    t1=$(now)
    c1=$(cpu_ticks "$MONITOR_PID")
    curl -s "$MONITOR_URL/metrics" >"$tmp/h1"
    accepted=$(($(metric_sum "$tmp/h1" '^vitals_heartbeats_total\{.*transport="udp".*result="accepted"') - $(metric_sum "$tmp/h0" '^vitals_heartbeats_total\{.*transport="udp".*result="accepted"')))
    rejected=$(($(metric_sum "$tmp/h1" '^vitals_heartbeats_total\{.*transport="udp"') - $(metric_sum "$tmp/h0" '^vitals_heartbeats_total\{.*transport="udp"') - accepted))
    share=$(echo "100 * ($c1 - $c0) / $CLK_TCK / ($t1 - $t0)" | bc -l)
    printf '| UDP (%s senders) | %s | %s | %.0f | %s | %.0f %% of a core |\n' "$UDP_SENDERS" "$before" "$sent" \
        "$(echo "$accepted / $UDP_SECONDS" | bc -l)" "$rejected" "$share" >>"$report"
    grep -E '^vitals_heartbeats_total\{.*udp' "$tmp/h1" | sed 's/^/    /' >"$tmp/udp-counters"

    before=$(load)
    cat >"$tmp/ping.lua" <<EOF
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", string.format("/ping/hb-%06d?key=bench-ping-key-0123456789", n % $PING_TARGETS))
end
EOF
    say "http pings: wrk -c$PING_CONNECTIONS over $PING_TARGETS ids, $PING_DURATION…"
    curl -s "$MONITOR_URL/metrics" >"$tmp/p0"
    c0=$(cpu_ticks "$MONITOR_PID")
    t0=$(now)
    "${client_cpu[@]}" wrk -t1 -c"$PING_CONNECTIONS" -d"$PING_DURATION" -s "$tmp/ping.lua" \
        "$MONITOR_URL" >"$tmp/wrk.txt" 2>&1 || { cat "$tmp/wrk.txt" >&2; die "wrk failed"; }
    t1=$(now)
    c1=$(cpu_ticks "$MONITOR_PID")
    curl -s "$MONITOR_URL/metrics" >"$tmp/p1"
    accepted=$(($(metric_sum "$tmp/p1" '^vitals_heartbeats_total\{.*transport="http".*result="accepted"') - $(metric_sum "$tmp/p0" '^vitals_heartbeats_total\{.*transport="http".*result="accepted"')))
    requests=$(awk '/requests in/ { print $1 }' "$tmp/wrk.txt")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$tmp/wrk.txt")
    share=$(echo "100 * ($c1 - $c0) / $CLK_TCK / ($t1 - $t0)" | bc -l)
    # shellcheck disable=SC2016 # backquotes are markdown here
    printf '| HTTP `/ping/<id>` | %s | %s | %.0f | %s non-2xx | %.0f %% of a core |\n' "$before" \
        "$requests" "$(echo "$accepted / ($t1 - $t0)" | bc -l)" "${non2xx:-0}" "$share" >>"$report"
    stop_pid "$MONITOR_PID"

    # The ceiling: what any HTTP server can answer on this machine under the same wrk, pinned
    # the same way (HAProxy, one thread, answering 200 itself: no routing, no work).
    ceiling_port=$(free_port)
    cat >"$tmp/ceiling.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
frontend ceiling
    bind 127.0.0.1:$ceiling_port
    http-request return status 200 content-type text/plain string OK
CFG
    "${server_cpu[@]}" "$HAPROXY_BIN" -db -f "$tmp/ceiling.cfg" </dev/null >"$tmp/ceiling.log" 2>&1 &
    ceiling_pid=$!
    for ((i = 0; i < 50; i++)); do
        curl -fs "http://127.0.0.1:$ceiling_port/" >/dev/null && break
        sleep 0.1
    done
    before=$(load)
    say "ceiling: the same wrk against haproxy answering by itself…"
    c0=$(cpu_ticks "$ceiling_pid")
    t0=$(now)
    "${client_cpu[@]}" wrk -t1 -c"$PING_CONNECTIONS" -d"$PING_DURATION" -s "$tmp/ping.lua" \
        "http://127.0.0.1:$ceiling_port" >"$tmp/wrk-ceiling.txt" 2>&1 ||
        { cat "$tmp/wrk-ceiling.txt" >&2; die "wrk failed against the ceiling"; }
    t1=$(now)
    c1=$(cpu_ticks "$ceiling_pid")
    stop_pid "$ceiling_pid"
    requests=$(awk '/requests in/ { print $1 }' "$tmp/wrk-ceiling.txt")
    rate=$(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk-ceiling.txt")
    share=$(echo "100 * ($c1 - $c0) / $CLK_TCK / ($t1 - $t0)" | bc -l)
    # shellcheck disable=SC2016 # backquotes are markdown here
    printf '| ceiling: HAProxy answering itself, same wrk | %s | %s | %.0f | – | %.0f %% of a core |\n' \
        "$before" "$requests" "$rate" "$share" >>"$report"
    {
        echo
        echo "UDP counters at the end:"
        echo
        cat "$tmp/udp-counters"
        echo
        echo "wrk (HTTP pings), latency:"
        echo
        grep -E 'Latency|Req/Sec|requests in' "$tmp/wrk.txt" | sed 's/^/    /'
        echo
    } >>"$report"
fi

# ---------------------------------------------------------------------------------------------
# 4: memory per idle target.

# Sets IDLE_RSS to the RSS in KiB of `vitals serve` with COUNT idle heartbeat targets, once
# it serves and has settled; keeps its smaps_rollup in $tmp/smaps-COUNT.
idle_rss() {
    local count=$1 port config i
    port=$(free_port)
    config=$tmp/idle-$count.toml
    {
        server_header "$port" "$tmp/data-idle-$count"
        for ((i = 0; i < count; i++)); do
            printf '\n[[target]]\nid = "idle-%06d"\nkind = "heartbeat"\nperiod = "1h"\n' "$i"
        done
    } >"$config"
    start_monitor "$config" "$port" "$tmp/idle-$count.log"
    sleep 5
    cp "/proc/$MONITOR_PID/smaps_rollup" "$tmp/smaps-$count"
    IDLE_RSS=$(awk '/VmRSS/ { print $2 }' "/proc/$MONITOR_PID/status")
    stop_pid "$MONITOR_PID"
}

if [[ -z ${SKIP_MEMORY:-} ]]; then
    before=$(load)
    say "memory: one idle target…"
    idle_rss 1
    rss_one=$IDLE_RSS
    say "memory: $IDLE_TARGETS idle targets…"
    idle_rss "$IDLE_TARGETS"
    rss_many=$IDLE_RSS
    per_target=$(echo "($rss_many - $rss_one) * 1024 / ($IDLE_TARGETS - 1)" | bc -l)
    {
        echo "## Memory per idle target"
        echo
        echo "| targets | RSS |"
        echo "| ---: | ---: |"
        echo "| 1 | $rss_one KiB |"
        echo "| $IDLE_TARGETS | $rss_many KiB |"
        echo
        printf '**%.0f bytes per idle heartbeat target** (load before: %s).\n\n' "$per_target" "$before"
        echo "smaps_rollup with $IDLE_TARGETS targets:"
        echo
        sed 's/^/    /' "$tmp/smaps-$IDLE_TARGETS"
        echo
    } >>"$report"
fi

cp "$report" "$results"
cat "$report"
say "written to $results"
