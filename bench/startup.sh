#!/usr/bin/env bash
# Start-up with many targets (issue 10): how long `vitals check-config` takes to read and
# validate a configuration of N heartbeat targets, how long `vitals serve` takes from exec
# until its HTTP port accepts connections, and what the first page of /api/v1/targets costs
# then.
#
#   bench/startup.sh [N...]            (default: 1000 10000 100000)
#
# For each N it writes one configuration (`kind = "heartbeat"`, `period = "1h"`, ids
# `hb-000000`…, a few with depends_on, and a rule naming one target, so the cross-target
# checks have something to do), then runs each measurement RUNS times and prints every run
# and the median, as a markdown table. Each `vitals serve` gets a fresh data directory
# (an empty SQLite store), so a run does not restore what the one before saved.
#
# Settings (environment):
#   RUNS=3          runs per measurement
#   VITALS_BIN      the binary to measure (default: target/release/vitals, built with
#                   `cargo build --release -p vitals-cli` when missing)
#   KEEP=1          keep the temporary directory (configurations, logs) and print its path
#
# Times come from `date +%s%N` around each run. Time to listen is polled every 5 ms with
# bash's /dev/tcp, so it is exact to about that. The machine's load (`uptime`) is printed
# first: on a shared machine, re-run when it is quiet. Everything started here is stopped by
# PID when the script exits, however it exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

RUNS=${RUNS:-3}
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 10000 100000)

VITALS_BIN=${VITALS_BIN:-$root/target/release/vitals}
if [[ ! -x $VITALS_BIN ]]; then
    vitals_say "building $VITALS_BIN…"
    nice -n 15 cargo build --release -p vitals-cli >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vitals-startup.XXXXXX")
SERVER_PID=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $SERVER_PID ]] && _vitals_stop_pid "$SERVER_PID" TERM "vitals serve"
    if [[ -n ${KEEP:-} ]]; then
        vitals_say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

# The median of the arguments (numbers).
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# A configuration of COUNT heartbeat targets listening on PORT with data in DIR. Every
# hundredth target depends on the one before it; one rule names the last target.
write_config() {
    local count=$1 port=$2 dir=$3
    cat <<EOF
[server]
listen = "127.0.0.1:$port"
data_dir = "$dir"

[[channel]]
id = "ops"
kind = "command"
command = ["/bin/true"]

[[rule]]
targets = ["$(printf 'hb-%06d' $((count - 1)))"]
channels = ["ops"]
EOF
    awk -v n="$count" 'BEGIN {
        for (i = 0; i < n; i++) {
            printf "\n[[target]]\nid = \"hb-%06d\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n", i
            if (i % 100 == 1) printf "depends_on = [\"hb-%06d\"]\n", i - 1
        }
    }'
}

# Milliseconds of `vitals check-config FILE`, which must succeed.
time_check() {
    local file=$1 start
    start=$(now_ns)
    "$VITALS_BIN" check-config "$file" >"$tmp/check.log" 2>&1 ||
        { cat "$tmp/check.log" >&2; vitals_fail "check-config failed on $file"; }
    ms_since "$start"
}

# Starts `vitals serve` with FILE and prints the milliseconds until PORT accepts a
# connection, then the milliseconds of GET /api/v1/targets (its first page) and its size in
# bytes; stops the server.
time_serve() {
    local file=$1 port=$2 log=$3 start listen i
    start=$(now_ns)
    "$VITALS_BIN" serve --config "$file" </dev/null >"$log" 2>&1 &
    SERVER_PID=$!
    for ((i = 0; i < 24000; i++)); do # 2 minutes of 5 ms
        _vitals_port_open "$port" && break
        kill -0 "$SERVER_PID" 2>/dev/null ||
            { _vitals_tail "$log"; vitals_fail "vitals serve exited while starting"; }
        sleep 0.005
    done
    _vitals_port_open "$port" || vitals_fail "vitals serve did not listen on $port within 2 minutes"
    listen=$(ms_since "$start")
    local page
    page=$(curl -s -o "$tmp/page.json" -w '%{time_total} %{size_download} %{http_code}' \
        "http://127.0.0.1:$port/api/v1/targets")
    _vitals_stop_pid "$SERVER_PID" TERM "vitals serve"
    SERVER_PID=
    read -r seconds bytes code <<<"$page"
    [[ $code == 200 ]] || vitals_fail "GET /api/v1/targets answered $code"
    echo "$listen $(awk -v s="$seconds" 'BEGIN { printf "%d", s * 1000 }') $bytes"
}

vitals_say "machine: $(nproc) cores; $(uptime)"
vitals_say "binary: $VITALS_BIN, built $(date -u -r "$VITALS_BIN" '+%F %T UTC'); tree at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "| targets | check-config (ms) | serve: time to listen (ms) | GET /api/v1/targets (ms, bytes) |"
echo "| ---: | ---: | ---: | ---: |"
for n in "${sizes[@]}"; do
    port=$(free_port)
    config=$tmp/targets-$n.toml
    write_config "$n" "$port" "$tmp/data-$n" >"$config"
    checks=() listens=() pages=() bytes=0
    for ((run = 1; run <= RUNS; run++)); do
        checks+=("$(time_check "$config")")
    done
    for ((run = 1; run <= RUNS; run++)); do
        rm -rf "$tmp/data-$n"
        read -r listen page bytes <<<"$(time_serve "$config" "$port" "$tmp/serve-$n.log")"
        listens+=("$listen")
        pages+=("$page")
    done
    echo "| $n | **$(median "${checks[@]}")** (${checks[*]}) | **$(median "${listens[@]}")** (${listens[*]}) | $(median "${pages[@]}") (${pages[*]}), $bytes |"
done
