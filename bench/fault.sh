#!/usr/bin/env bash
# The load-and-fault run (issue 11): `vitals serve` under three faults at once, then a check
# that nothing was lost.
#
#   bench/fault.sh
#
# For DURATION seconds, against the release `vitals` binary:
#
#   - a ping flood: wrk POSTs 100 kB bodies to /ping/<id>/log over FLOOD_IDS ids (half of
#     them keyed, sent with their key) on FLOOD_CONNECTIONS connections, plus requests for
#     unknown ids and unkeyed pings to keyed ids; and a second wrk alternating
#     /ping/<flappy>/fail and /ping/<flappy> from FLAP_CONNECTIONS connections (a flapping
#     heartbeat, whose changes alert);
#   - slowloris: SLOW connections that send half a request head and then a byte every few
#     seconds, reopened as the monitor closes them;
#   - a dead alert receiver: the webhook channel's port accepts connections and never
#     answers.
#
# Meanwhile it samples, every second, the monitor's RSS (VmRSS) and open descriptors
# (/proc/<pid>/fd), and times GET /livez on the monitor's own port every 100 ms.
#
# Then it stops the faults, replaces the dead receiver by one that answers 200 and records
# each Idempotency-Key, waits for the outbox to drain, stops the monitor with SIGTERM and
# checks the database: every target's stored transitions form an unbroken chain (each `from`
# is the previous `to`) ending in the state the API showed, and every outbox row was
# delivered and received. It prints a markdown report (load average first: on a shared
# machine, re-run when it is quiet) and writes it to bench/results/fault-<date>.md.
#
# Settings (environment):
#   DURATION=60 FLOOD_IDS=20 FLOOD_CONNECTIONS=32 FLAP_CONNECTIONS=8 SLOW=400
#   VITALS_BIN   use this binary instead of building it
#
# Needs wrk, python3, sqlite3 and curl.
# Everything it starts is stopped by PID when it exits, however it exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

DURATION=${DURATION:-60}
FLOOD_IDS=${FLOOD_IDS:-20}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-32}
FLAP_CONNECTIONS=${FLAP_CONNECTIONS:-8}
SLOW=${SLOW:-400}
KEY=fault-bench-key-0123456789

for tool in wrk sqlite3 python3 curl; do
    command -v "$tool" >/dev/null || vitals_fail "needs $tool (apt-get install $tool)"
done
if [[ -z ${VITALS_BIN:-} ]]; then
    nice -n 15 cargo build --release -q -p vitals-cli --bin vitals
    VITALS_BIN=$root/target/release/vitals
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(free_port)
hook_port=$(free_port)
base=http://127.0.0.1:$port

# --- the configuration ------------------------------------------------------------------------
{
    cat <<EOF
[server]
listen = "127.0.0.1:$port"
data_dir = "$tmp/data"

[notify]
group_wait = "0s"
retry_min = "1s"
retry_max = "5s"

[[channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:$hook_port/hook"
timeout = "2s"

[[rule]]
on = ["unhealthy", "recovered", "flapping"]
channels = ["hook"]

[[target]]
id = "flappy"
kind = "heartbeat"
period = "1h"
ping_id = "flappy-5b1f0c2e"
fall = 1
rise = 1
EOF
    for ((i = 0; i < FLOOD_IDS; i++)); do
        if ((i % 2 == 0)); then
            printf '\n[[target]]\nid = "flood-%02d"\nkind = "heartbeat"\nperiod = "1h"\nping_key = "%s"\n' "$i" "$KEY"
        else
            printf '\n[[target]]\nid = "flood-%02d"\nkind = "heartbeat"\nperiod = "1h"\nping_id = "flood-%02d-4c1e9f7a"\n' "$i" "$i"
        fi
    done
} >"$tmp/vitals.toml"

# --- helpers (python3: no more tools than the machine has) -------------------------------------
cat >"$tmp/dead.py" <<'EOF'
# Accepts connections and never answers: an alert receiver that hangs.
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)
EOF
cat >"$tmp/receiver.py" <<'EOF'
# Answers 200 to every POST and appends its Idempotency-Key to a file.
import http.server, sys
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        out.write(self.headers.get("idempotency-key", "") + "\n")
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
cat >"$tmp/slowloris.py" <<'EOF'
# N connections that send half a request head, then a byte every 5 s; reopened when closed.
import socket, sys, time, selectors
host, port, n, until = "127.0.0.1", int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
conns, opened, cut = [], 0, 0
def open_one():
    global opened
    try:
        c = socket.create_connection((host, port), timeout=2)
        c.sendall(b"GET /livez HTTP/1.1\r\nhost: x\r\nx-slow: ")
        c.setblocking(False); conns.append(c); opened += 1
    except OSError:
        pass
while time.time() < until:
    while len(conns) < n and time.time() < until:
        open_one()
    for c in list(conns):
        try:
            c.send(b"a")
            if c.recv(1, socket.MSG_PEEK) == b"":
                raise OSError
        except BlockingIOError:
            pass
        except OSError:
            conns.remove(c); c.close(); cut += 1
    time.sleep(5)
print(f"slowloris: {opened} connections opened, {cut} closed by the monitor")
EOF
cat >"$tmp/livez.py" <<'EOF'
# GET /livez every 100 ms on a fresh connection; prints latency percentiles and failures.
import http.client, sys, time
port, until = int(sys.argv[1]), time.time() + float(sys.argv[2])
times, failures = [], {}
while time.time() < until:
    start = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/livez"); r = c.getresponse(); r.read(); c.close()
        if r.status != 200:
            failures[str(r.status)] = failures.get(str(r.status), 0) + 1
    except Exception as e:
        failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1
    times.append((time.monotonic() - start) * 1000)
    time.sleep(max(0, 0.1 - (time.monotonic() - start)))
times.sort()
pct = lambda p: times[min(len(times) - 1, int(len(times) * p))]
print(f"{len(times)} {pct(0.5):.1f} {pct(0.99):.1f} {times[-1]:.1f} {sum(failures.values())} {failures or ''}")
EOF
cat >"$tmp/flood.lua" <<EOF
local n = 0
local body = string.rep("x", 100000)
request = function()
    n = n + 1
    local i = n % $FLOOD_IDS
    local kind = n % 10
    if kind == 0 then
        return wrk.format("GET", string.format("/ping/unknown-%d", n))
    elseif i % 2 == 0 then
        -- keyed ids: every seventh request without the key
        local key = (n % 7 == 0) and "" or "?key=$KEY"
        return wrk.format("POST", string.format("/ping/flood-%02d/log%s", i, key), nil, body)
    else
        return wrk.format("POST", string.format("/ping/flood-%02d-4c1e9f7a/log", i), nil, body)
    end
end
EOF
cat >"$tmp/flap.lua" <<'EOF'
local n = 0
request = function()
    n = n + 1
    if n % 2 == 0 then return wrk.format("GET", "/ping/flappy-5b1f0c2e/fail") end
    return wrk.format("GET", "/ping/flappy-5b1f0c2e")
end
EOF

# --- run ----------------------------------------------------------------------------------
python3 "$tmp/dead.py" "$hook_port" &
dead=$!
pids+=("$dead")
RUST_LOG=warn "$VITALS_BIN" serve --config "$tmp/vitals.toml" >"$tmp/monitor.log" 2>&1 &
monitor=$!
pids+=("$monitor")
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "$base/livez" 2>/dev/null && break
    kill -0 "$monitor" 2>/dev/null || { cat "$tmp/monitor.log" >&2; vitals_fail "vitals serve exited"; }
    sleep 0.1
done
say() { vitals_say "$@"; }

before=$(uptime | sed 's/.*load average: //')
say "faults for ${DURATION}s: ping flood, flapping pings, $SLOW slowloris connections, a dead receiver…"
(
    peak_rss=0 peak_fds=0
    while kill -0 "$monitor" 2>/dev/null; do
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$monitor/status" 2>/dev/null || echo 0)
        fds=$(find "/proc/$monitor/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        ((rss > peak_rss)) && peak_rss=$rss
        ((fds > peak_fds)) && peak_fds=$fds
        # Replaced whole, never truncated in place: the reader after the faults once caught
        # the file empty.
        echo "$peak_rss $peak_fds $rss $fds" >"$tmp/peaks.new" && mv "$tmp/peaks.new" "$tmp/peaks"
        sleep 1
    done
) &
pids+=($!)
python3 "$tmp/livez.py" "$port" "$((DURATION + 5))" >"$tmp/livez" &
livez=$!
pids+=("$livez")
python3 "$tmp/slowloris.py" "$port" "$SLOW" "$DURATION" >"$tmp/slowloris" &
slow=$!
pids+=("$slow")
wrk -t1 -c"$FLOOD_CONNECTIONS" -d"${DURATION}s" -s "$tmp/flood.lua" "$base" >"$tmp/wrk-flood" 2>&1 &
flood=$!
pids+=("$flood")
wrk -t1 -c"$FLAP_CONNECTIONS" -d"${DURATION}s" -s "$tmp/flap.lua" "$base" >"$tmp/wrk-flap" 2>&1 &
flap=$!
pids+=("$flap")
wait "$flood" "$flap" "$slow"
during=$(cat "$tmp/peaks")
wait "$livez"
after_load=$(uptime | sed 's/.*load average: //')

say "faults over; the receiver answers again, waiting for the outbox to drain…"
kill "$dead"
python3 "$tmp/receiver.py" "$hook_port" "$tmp/received" &
pids+=($!)
: >"$tmp/received"
deadline=$((SECONDS + 120))
while ((SECONDS < deadline)); do
    pending=$(curl -fsS "$base/api/v1/outbox?pending=true&limit=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["outbox"]))')
    ((pending == 0)) && break
    sleep 1
done
states=$(curl -fsS "$base/api/v1/targets?limit=1000" | python3 -c '
import json, sys
b = json.load(sys.stdin)
for t in b["targets"]: print(t["id"], t["state"])')
metrics=$(curl -fsS "$base/metrics")
kill -TERM "$monitor"
wait "$monitor" || true

db=$tmp/data/vitals.db
chain=$(sqlite3 "$db" "
    SELECT t.name, tr.from_state, tr.to_state FROM transitions tr JOIN targets t ON t.id = tr.target
    WHERE tr.from_state != tr.to_state ORDER BY tr.id" | python3 -c '
import sys
states = dict(line.split() for line in open(sys.argv[1]) if line.strip())
last, broken, count = {}, 0, 0
for line in sys.stdin:
    target, frm, to = line.strip().split("|")
    if frm in ("paused", "maintenance") or to in ("paused", "maintenance"):
        continue
    count += 1
    if target in last and last[target] != frm:
        broken += 1
    last[target] = to
wrong = sum(1 for t, s in states.items() if last.get(t, "unknown") != s)
print(count, broken, wrong)' <(echo "$states"))
read -r stored broken wrong <<<"$chain"
outbox=$(sqlite3 "$db" "SELECT count(*), count(delivered) FROM outbox")
IFS='|' read -r rows delivered <<<"$outbox"
lost=$(sqlite3 "$db" "SELECT key FROM outbox" | sort -u | comm -23 - <(sort -u "$tmp/received") | wc -l)
db_size=$(du -k "$db" | cut -f1)
read -r peak_rss peak_fds _ _ <<<"$during"
read -r probes p50 p99 max failed failures <<<"$(cat "$tmp/livez")"
count() { grep -E "^vitals_heartbeats_total\{transport=\"http\",result=\"$1\"\}" <<<"$metrics" | awk '{print $2}' | head -1; }

report=$(cat <<EOF
### Load and fault ($(date -u +%Y-%m-%d), ${DURATION}s, provisional)

Load average before: $before; after the faults: $after_load.

| | |
|---|---|
| ping flood | $(grep -E 'requests in' "$tmp/wrk-flood" | xargs), 100 kB bodies over $FLOOD_IDS ids; accepted $(count accepted), 429 $(count rate_limited), 401 $(count bad_key), 404 $(count unknown_id) |
| flapping pings | $(grep -E 'requests in' "$tmp/wrk-flap" | xargs) |
| slowloris | $(cat "$tmp/slowloris") (SLOW=$SLOW, limit 512) |
| peak RSS | $((peak_rss / 1024)) MiB |
| peak open descriptors | $peak_fds |
| \`/livez\` (every 100 ms, $probes probes) | p50 $p50 ms, p99 $p99 ms, max $max ms, $failed failed ${failures:-} |
| transitions stored | $stored; chain broken $broken times; last stored state differs from the API's for $wrong targets |
| alerts | $rows outbox rows, $delivered delivered, $lost not received |
| database | $((db_size / 1024)) MiB |
EOF
)
printf '%s\n' "$report"
mkdir -p bench/results
printf '%s\n' "$report" >"bench/results/fault-$(date -u +%Y%m%d-%H%M%S).md"
