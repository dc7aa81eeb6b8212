#!/usr/bin/env bash
# Two-level detection end to end with real processes (issue 15).
#
#   bench/detect.sh
#
# A real `vitals serve` watches one heartbeat target: UDP beats every 100 ms from
# `beat_sender` (crates/monitor/examples), which also listens on the TCP port the target's
# `confirm` points at. TRIALS times each:
#
#   - gone:    kill -9 the sender; time from the kill to the target's `down` (the time of the
#              transition as the monitor stamped it), then a new sender on the same port;
#   - stall:   SIGSTOP for 1.5 s, then SIGCONT; a `down` is a false death;
#   - dropped: the sender skips 15 beats (SIGUSR1: 1.5 s of lost beats); a `down` is a false
#              death.
#
# It prints a markdown table (load average first: on a shared machine, re-run when it is
# quiet) and writes it to bench/results/detect-<date>.md.
#
# Settings (environment): TRIALS=50, PROFILE=release (or debug), VITALS_BIN, SENDER_BIN.
# Needs python3. Everything it starts is stopped by PID when it exits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

TRIALS=${TRIALS:-50}
PROFILE=${PROFILE:-release}
command -v python3 >/dev/null || vitals_fail "needs python3"
flag=(--release)
[[ $PROFILE == debug ]] && flag=()
if [[ -z ${VITALS_BIN:-} ]]; then
    nice -n 15 cargo build "${flag[@]}" -q -p vitals-cli --bin vitals
    VITALS_BIN=$root/target/$PROFILE/vitals
fi
if [[ -z ${SENDER_BIN:-} ]]; then
    nice -n 15 cargo build "${flag[@]}" -q -p vitals-monitor --example beat_sender
    SENDER_BIN=$root/target/$PROFILE/examples/beat_sender
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(free_port)
udp=$(free_port)
confirm=$(free_port)
key=00112233445566778899aabbccddeeff
cat >"$tmp/vitals.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
udp_listen = "127.0.0.1:$udp"
data_dir = "$tmp/data"

[[target]]
id = "w"
kind = "heartbeat"
period = "100ms"
udp_key = "$key"
confirm = "tcp://127.0.0.1:$confirm"
TOML
"$VITALS_BIN" serve --config "$tmp/vitals.toml" >"$tmp/serve.log" 2>&1 &
pids+=($!)

load=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD)
mkdir -p bench/results
out=bench/results/detect-$(date -u +%Y%m%d-%H%M).md
python3 - "$port" "$udp" "$confirm" "$key" "$SENDER_BIN" "$TRIALS" "$load" "$commit" "$PROFILE" >"$out" <<'PY'
import json, os, signal, subprocess, sys, time, urllib.request
from datetime import datetime

port, udp, confirm, key, sender, trials, load, commit, profile = sys.argv[1:]
trials = int(trials)
base = f"http://127.0.0.1:{port}"

def target():
    with urllib.request.urlopen(f"{base}/api/v1/targets/w", timeout=5) as r:
        return json.load(r)

def wait(pred, what, limit=30.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            t = target()
            if pred(t):
                return t
        except OSError:
            pass
        time.sleep(0.01)
    sys.exit(f"detect.sh: timed out waiting for {what}")

def start_sender():
    p = subprocess.Popen([sender, f"127.0.0.1:{udp}", "w", key, f"127.0.0.1:{confirm}"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    if b"ready" not in line:
        sys.exit("detect.sh: the sender did not start")
    return p

def stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def downs_since(t0):
    return [t for t in target().get("transitions", []) if t["to"] == "down" and stamp(t["at"]) >= t0]

wait(lambda t: True, "the monitor")
sender_proc = start_sender()
wait(lambda t: t["state"] == "healthy", "healthy")
gone, suspected = [], []
false = {"stall": 0, "dropped": 0}
for _ in range(trials):
    # Gone.
    wait(lambda t: t["state"] == "healthy", "healthy before the kill")
    time.sleep(0.3)
    t0 = time.time()
    sender_proc.send_signal(signal.SIGKILL)
    sender_proc.wait()
    down = wait(lambda t: t["state"] == "down", "down after the kill", 10)
    gone.append(stamp(down["since"]) - t0)
    sender_proc = start_sender()
    for kind in ("stall", "dropped"):
        wait(lambda t: t["state"] == "healthy", f"healthy before the {kind}")
        time.sleep(0.3)
        t0 = time.time()
        if kind == "stall":
            sender_proc.send_signal(signal.SIGSTOP)
            time.sleep(1.5)
            sender_proc.send_signal(signal.SIGCONT)
        else:
            sender_proc.send_signal(signal.SIGUSR1)
            time.sleep(1.5)
        wait(lambda t: t["state"] == "healthy", f"healthy after the {kind}", 10)
        false[kind] += len(downs_since(t0))
sender_proc.kill()

gone.sort()
ms = lambda s: f"{s * 1000:.0f} ms"
median = gone[len(gone) // 2]
print(f"# bench/detect.sh, {datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, {profile} build")
print()
print(f"Load average at the start: {load}. 100 ms UDP beats, confirm = tcp://, {trials} trials each.")
print()
print("| fault | trials | median to confirmed death | max | mean | false deaths |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| kill -9 (gone) | {trials} | {ms(median)} | {ms(gone[-1])} | {ms(sum(gone) / len(gone))} | — |")
print(f"| SIGSTOP 1.5 s (stall) | {trials} | — | — | — | {false['stall']} |")
print(f"| 15 beats skipped (1.5 s) | {trials} | — | — | — | {false['dropped']} |")
PY
cat "$out"
