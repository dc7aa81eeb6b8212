#!/usr/bin/env bash
# The replicas benchmark (issue 12): three `vitals serve` replicas on one PostgreSQL.
#
#   bench/ha.sh
#
# Against the release build of `vitals`, a private PostgreSQL (scripts/lib.sh, fsync off
# like the tests') and `vitals demo` as the HTTP target server:
#
#   1. steady state: TARGETS http targets at INTERVAL split over 3 replicas; over MEASURE
#      seconds: checks/s (sum of the replicas' `vitals_checks_total`), CPU per check (utime +
#      stime of the three from /proc/<pid>/stat), PostgreSQL statements/s
#      (pg_stat_statements), PostgreSQL's CPU (its processes' /proc stat), and WAL bytes per
#      target per day (pg_current_wal_lsn() before and after, scaled to 86,400 s);
#   2. takeover: KILLS times, `kill -9` of one replica (in turn), then the time until every
#      one of the 256 shards is held again by a live replica (polled every 100 ms in
#      PostgreSQL); the killed replica is started again (a new process, a new replica) and
#      the fleet left to settle before the next kill. Median and max.
#
# It prints a markdown report and writes it to bench/results/ha-<date>.md (gitignored). The
# load average is recorded before each part: on a shared machine the figures are provisional.
#
# Settings (environment):
#   TARGETS=3000   http targets (the issue's figure is 30000)
#   INTERVAL=1s    their check interval
#   MEASURE=30     seconds measured in part 1
#   KILLS=10       kills in part 2
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

TARGETS=${TARGETS:-3000}
INTERVAL=${INTERVAL:-1s}
MEASURE=${MEASURE:-30}
KILLS=${KILLS:-10}

say() { vitals_say "$*"; }
die() { vitals_fail "$*"; exit 1; }

ensure_packages postgresql
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vitals-ha.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    stop_servers
    rm -rf "$tmp"
}
trap cleanup EXIT

say "building vitals (release)…"
cargo build --release -q -p vitals-cli || die "cargo build --release -p vitals-cli failed"
vitals=$root/target/release/vitals

pg_port=$(free_port)
start_postgres "$tmp/pg" "$pg_port"
bin=$(pg_bin_dir)
url="postgres://postgres@127.0.0.1:$pg_port/postgres"
psql() { "$bin/psql" -X -q -t -A -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "$1"; }

demo_port=$(free_port)
"$vitals" demo --listen "127.0.0.1:$demo_port" >"$tmp/demo.log" 2>&1 &
pids+=($!)

{
    printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s/data"\n\n' "$tmp"
    printf '[defaults]\ninterval = "%s"\ntimeout = "500ms"\n' "$INTERVAL"
    for ((i = 0; i < TARGETS; i++)); do
        printf '\n[[target]]\nid = "svc-%05d"\nkind = "http"\nurl = "http://127.0.0.1:%s/livez"\n' \
            "$i" "$demo_port"
    done
} >"$tmp/vitals.toml"

declare -A replica_pid
start_replica() {
    local name=$1
    VITALS_REPLICA=$name "$vitals" serve --config "$tmp/vitals.toml" --store "$url" \
        >"$tmp/$name.log" 2>&1 &
    replica_pid[$name]=$!
    pids+=($!)
}

now_ms="(extract(epoch from clock_timestamp()) * 1000)::bigint"
held_live() { psql "SELECT count(*) FROM leases WHERE owner IS NOT NULL AND expires_ms > $now_ms" 2>/dev/null || echo 0; }
holders() { psql "SELECT count(DISTINCT owner) FROM leases WHERE owner IS NOT NULL AND expires_ms > $now_ms" 2>/dev/null || echo 0; }
settle() {
    local want=$1 i
    for ((i = 0; i < 600; i++)); do
        [[ $(held_live) == 256 && $(holders) == "$want" ]] && return 0
        sleep 0.1
    done
    die "the fleet did not settle on $want replicas"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {
    local total=0 pid
    for pid in $(pgrep -u postgres postgres || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
checks() {
    local name sum=0 port
    for name in r1 r2 r3; do
        port=$(grep -o 'vitals monitor on http://127.0.0.1:[0-9]*' "$tmp/$name.log" | tail -1 | sed 's/.*://')
        sum=$((sum + $(curl -s "http://127.0.0.1:$port/metrics" |
            awk '/^vitals_checks_total /{print int($2)}')))
    done
    echo "$sum"
}

say "starting 3 replicas with $TARGETS targets…"
for name in r1 r2 r3; do start_replica "$name"; done
settle 3
sleep 10

report="## bench/ha.sh — $(date -u +%Y-%m-%dT%H:%MZ)\n\n"
report+="$TARGETS http targets at $INTERVAL, 3 replicas. Load before part 1: $(uptime | sed 's/.*load average: //')\n\n"
hz=$(getconf CLK_TCK)
c0=$(checks)
t0=0
for name in r1 r2 r3; do t0=$((t0 + $(ticks "${replica_pid[$name]}"))); done
p0=$(pg_ticks)
q0=$(psql "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements")
w0=$(psql "SELECT pg_current_wal_lsn() - '0/0'")
sleep "$MEASURE"
c1=$(checks)
t1=0
for name in r1 r2 r3; do t1=$((t1 + $(ticks "${replica_pid[$name]}"))); done
p1=$(pg_ticks)
q1=$(psql "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements")
w1=$(psql "SELECT pg_current_wal_lsn() - '0/0'")
report+="| measure | value |\n|---|---|\n"
report+="| checks/s (3 replicas) | $(((c1 - c0) / MEASURE)) |\n"
report+="| CPU per check (replicas), µs | $(awk -v t=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$hz" 'BEGIN{printf "%.1f", c ? t / hz * 1e6 / c : 0}') |\n"
report+="| PostgreSQL statements/s | $(((q1 - q0) / MEASURE)) |\n"
report+="| PostgreSQL CPU, % of a core | $(awk -v t=$((p1 - p0)) -v s="$MEASURE" -v hz="$hz" 'BEGIN{printf "%.1f", t / hz / s * 100}') |\n"
report+="| WAL bytes per target per day | $(awk -v w="$((w1 - w0))" -v s="$MEASURE" -v n="$TARGETS" 'BEGIN{printf "%.0f", w / s * 86400 / n}') |\n\n"

say "takeover after kill -9, $KILLS times…"
report+="Load before part 2: $(uptime | sed 's/.*load average: //')\n\n"
times=()
names=(r1 r2 r3)
for ((k = 0; k < KILLS; k++)); do
    victim=${names[$((k % 3))]}
    start=$(date +%s%N)
    kill -KILL "${replica_pid[$victim]}"
    wait "${replica_pid[$victim]}" 2>/dev/null || true
    while [[ $(held_live) != 256 || $(psql "SELECT count(*) FROM leases WHERE owner = '$victim' AND expires_ms > $now_ms") != 0 ]]; do
        sleep 0.1
    done
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
    say "kill $((k + 1)): ${times[-1]} ms"
    start_replica "$victim"
    settle 3
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END{print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
max=$(echo "$sorted" | tail -1)
report+="| takeover after kill -9 (lease 4 s) | ms |\n|---|---|\n| median of $KILLS | $median |\n| max | $max |\n"

mkdir -p bench/results
out=bench/results/ha-$(date -u +%Y%m%d-%H%M).md
printf '%b' "$report" | tee "$out"
say "written to $out"
