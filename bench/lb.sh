#!/usr/bin/env bash
# The load balancer benchmark (issue 4): vitals lb beside HAProxy and nginx from the
# distribution's packages, on the same three backends, in one run.
#
#   bench/lb.sh
#
# Three measurements for each balancer:
#
#   1. throughput and latency: wrk against the balancer, and against one backend directly
#      (the overhead is the difference), fast local backends answering a few bytes;
#   1b. the same over TLS (PARTS=tls): each balancer terminates TLS 1.3 with one ECDSA P-256
#      certificate (HAProxy `ssl crt`, nginx `ssl_certificate`, vitals `tls_certificates`),
#      all on the cipher suite TLS_AES_256_GCM_SHA384 with X25519 (the one rustls takes from
#      wrk's OpenSSL offer; HAProxy and nginx are pinned to it), keep-alive as in 1; the
#      suite each one negotiated is printed beside its numbers;
#   2. failover: wrk runs for FAIL_SECONDS; after EVENT_AT seconds one of the three backends
#      is (a) killed with SIGKILL, (b) paused with SIGSTOP, or (c) switched to answering 500
#      while its readiness still passes. Reported: failed requests (wrk's non-2xx responses
#      plus socket errors and timeouts) and p99 latency over the run; for SIGSTOP also how
#      long after SIGCONT the backend serves again (its own request count, polled every 50 ms,
#      under a light load). "Out of rotation after" is the time from the event until the
#      balancer itself reports the backend out (vitals: its admin API; HAProxy: its stats
#      page; nginx has no such report), polled every 20 ms.
#
# Configured alike, each in its documented way: checks of GET /readyz every CHECK_INTERVAL
# with a CHECK_TIMEOUT timeout, fall 2 and rise 2, round robin, retries of failed
# connections on another backend. nginx (open source) has no active checks: it uses its
# passive max_fails / fail_timeout and proxy_next_upstream, as its documentation says.
# Each balancer gets one thread (vitals: TOKIO_WORKER_THREADS=1, HAProxy nbthread 1, nginx
# one worker) pinned to core 0; wrk and the backends share core 1 (PIN=0 turns pinning off).
#
# It prints a markdown report and writes it to bench/results/lb-<date>.md (gitignored; copy
# the numbers you keep into BENCHMARKS.md). Needs: wrk, haproxy, nginx-light (apt-get).
#
# Settings (environment):
#   BIN=target/release     where vitals and vitals-lb-testbackend are
#                          (cargo build --release -p vitals-cli -p vitals-lb)
#   DURATION=10            seconds of each throughput run; CONNECTIONS=32
#   FAIL_SECONDS=8         length of each failover run; EVENT_AT=2
#   CHECK_INTERVAL=1s      CHECK_TIMEOUT=500ms
#   PARTS="throughput tls failover"  which measurements to run; add "stall" for issue 15's
#                          repeated SIGSTOP (vitals only): STOP_TRIALS=50 times, under a
#                          light load (wrk -c8), the time until b is out of rotation, and
#                          whether its stall watch (pool/stall.rs: `stall` suspect or
#                          stalled in the admin API) or its checks took it out, and
#                          whether it was ejected (a false death); then KILL_TRIALS
#                          (default STOP_TRIALS) kill -9s of b, each restarted after
#   BALANCERS="vitals haproxy nginx"
#   PROFILE=0              1: perf record vitals during its plain throughput run (call graphs,
#                          the middle of the run) and append perf report's top symbols and
#                          a breakdown by crate to the report (perf from linux-perf)

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
FAIL_SECONDS=${FAIL_SECONDS:-8}
EVENT_AT=${EVENT_AT:-2}
CHECK_INTERVAL=${CHECK_INTERVAL:-1s}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-500ms}
PIN=${PIN:-1}
PROFILE=${PROFILE:-0}
PARTS=${PARTS:-throughput tls failover}
BALANCERS=${BALANCERS:-vitals haproxy nginx}
ms() { local v=$1; case $v in *ms) echo "${v%ms}" ;; *s) echo $(( ${v%s} * 1000 )) ;; esac; }
INTERVAL_MS=$(ms "$CHECK_INTERVAL")
TIMEOUT_MS=$(ms "$CHECK_TIMEOUT")

for tool in wrk curl openssl $BALANCERS; do
  [ "$tool" = vitals ] && continue
  command -v $tool >/dev/null || { echo "bench/lb.sh: $tool is missing (apt-get install -y wrk haproxy nginx-light curl openssl), or leave it out of BALANCERS" >&2; exit 1; }
done
for bin in vitals vitals-lb-testbackend; do
  [ -x "$BIN/$bin" ] || { echo "bench/lb.sh: $BIN/$bin is missing; run cargo build --release -p vitals-cli -p vitals-lb" >&2; exit 1; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

core() { if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NAMES=(a b c)
declare -A PORT BPID
for n in "${NAMES[@]}"; do PORT[$n]=$(free_port); done
LB_PORT=$(free_port); ADMIN_PORT=$(free_port); STATS_PORT=$(free_port)

start_backend() {
  local n=$1
  $(core 1) "$BIN/vitals-lb-testbackend" --name "$n" --listen "127.0.0.1:${PORT[$n]}" >/dev/null &
  BPID[$n]=$!
  PIDS+=("${BPID[$n]}")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${PORT[$n]}/readyz" >/dev/null && return; sleep 0.05; done
  echo "backend $n did not start" >&2; exit 1
}
stop_backend() { kill -CONT "${BPID[$1]}" 2>/dev/null || true; kill -9 "${BPID[$1]}" 2>/dev/null || true; wait "${BPID[$1]}" 2>/dev/null || true; }

write_configs() {
  cat > "$WORK/lb.toml" <<TOML
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[[listener]]
listen = "127.0.0.1:$LB_PORT"
pool = "web"
[[pool]]
id = "web"
balance = "round_robin"
interval = "$CHECK_INTERVAL"
timeout = "$CHECK_TIMEOUT"
interval_changing = "$CHECK_INTERVAL"
interval_down = "$CHECK_INTERVAL"
fall = 2
rise = 2
connect_timeout = "1s"
request_timeout = "2s"
TOML
  for n in "${NAMES[@]}"; do printf '[[pool.backend]]\nid = "%s"\naddress = "127.0.0.1:%s"\n' "$n" "${PORT[$n]}" >> "$WORK/lb.toml"; done

  cat > "$WORK/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 2s
  timeout check ${TIMEOUT_MS}ms
  retries 2
  option redispatch 1
  retry-on conn-failure empty-response response-timeout
  option http-keep-alive
listen stats
  bind 127.0.0.1:$STATS_PORT
  stats enable
  stats uri /stats
frontend web
  bind 127.0.0.1:$LB_PORT
  default_backend web
backend web
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  http-reuse always
CFG
  for n in "${NAMES[@]}"; do echo "  server $n 127.0.0.1:${PORT[$n]} check inter ${INTERVAL_MS}ms fall 2 rise 2 observe layer7 error-limit 5 on-error mark-down" >> "$WORK/haproxy.cfg"; done

  {
    echo "worker_processes 1; daemon off; master_process off; pid $WORK/nginx.pid; error_log $WORK/nginx-error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off; upstream web {"
    for n in "${NAMES[@]}"; do echo "  server 127.0.0.1:${PORT[$n]} max_fails=2 fail_timeout=$(( INTERVAL_MS < 1000 ? 1 : INTERVAL_MS / 1000 ))s;"; done
    echo "  keepalive 64; }"
    echo "  server { listen 127.0.0.1:$LB_PORT; location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "    proxy_connect_timeout 1s; proxy_read_timeout 2s; proxy_next_upstream error timeout http_502 http_503 http_504; } } }"
  } > "$WORK/nginx.conf"
}

# The TLS variants of the three configurations: one self-signed ECDSA P-256 certificate,
# TLS 1.3 only, TLS_AES_256_GCM_SHA384.
SUITE=TLS_AES_256_GCM_SHA384
write_tls_configs() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=lb.test -addext subjectAltName=DNS:lb.test \
    -keyout "$WORK/site.key" -out "$WORK/site.crt" 2>/dev/null
  cat "$WORK/site.crt" "$WORK/site.key" > "$WORK/site.pem"
  sed "s|^pool = \"web\"$|pool = \"web\"\ntls_certificates = [\"$WORK/site.pem\"]|" "$WORK/lb.toml" > "$WORK/lb-tls.toml"
  sed -e "s|^global$|global\n  ssl-default-bind-ciphersuites $SUITE\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n  ssl-default-bind-curves X25519|" \
      -e "s|^  bind 127.0.0.1:$LB_PORT$|  bind 127.0.0.1:$LB_PORT ssl crt $WORK/site.pem alpn h2,http/1.1|" \
      "$WORK/haproxy.cfg" > "$WORK/haproxy-tls.cfg"
  sed -e "s|listen 127.0.0.1:$LB_PORT;|listen 127.0.0.1:$LB_PORT ssl; ssl_certificate $WORK/site.crt; ssl_certificate_key $WORK/site.key; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites $SUITE; ssl_ecdh_curve X25519;|" \
      "$WORK/nginx.conf" > "$WORK/nginx-tls.conf"
}

LBPID=
SCHEME=http
# start_lb BALANCER [tls]
start_lb() {
  local tls=${2:-}
  SCHEME=http; [ -n "$tls" ] && SCHEME=https
  case $1 in
    vitals) TOKIO_WORKER_THREADS=1 $(core 0) "$BIN/vitals" lb --config "$WORK/lb${tls:+-tls}.toml" >/dev/null 2>"$WORK/vitals.log" & ;;
    haproxy) $(core 0) haproxy -db -f "$WORK/haproxy${tls:+-tls}.cfg" >/dev/null 2>"$WORK/haproxy.log" & ;;
    nginx) $(core 0) nginx -p "$WORK" -c "$WORK/nginx${tls:+-tls}.conf" -e "$WORK/nginx-error.log" 2>/dev/null & ;;
  esac
  LBPID=$!
  PIDS+=("$LBPID")
  # Ready once every backend has answered through it (checks have passed).
  for _ in $(seq 200); do
    local seen=""
    for _ in 1 2 3 4 5 6; do seen+=$(curl -sk "$SCHEME://127.0.0.1:$LB_PORT/" || true); done
    [[ $seen == *a* && $seen == *b* && $seen == *c* ]] && return
    sleep 0.05
  done
  echo "$1 did not route to every backend" >&2; cat "$WORK/$1.log" "$WORK/nginx-error.log" 2>/dev/null >&2; exit 1
}
# Whether backend b is out of rotation, as the balancer itself says (nginx cannot say).
b_is_out() {
  case $1 in
    vitals) curl -s "http://127.0.0.1:$ADMIN_PORT/api/v1/pools" | grep -o '"name":"b"[^}]*' | grep -q '"in_rotation":false' ;;
    haproxy) [[ $(curl -s "http://127.0.0.1:$STATS_PORT/stats;csv" | awk -F, '$1=="web" && $2=="b" {print $18}') == DOWN* ]] ;;
    *) return 2 ;;
  esac
}
# Milliseconds from now until b is out of rotation (polled every 20 ms), written to $2.
time_out() {
  local lb=$1 file=$2 t0 rc
  t0=$(date +%s%N)
  for _ in $(seq 300); do
    b_is_out "$lb" && rc=0 || rc=$?
    if [ $rc = 0 ]; then echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms" > "$file"; return; fi
    if [ $rc = 2 ]; then echo "-" > "$file"; return; fi
    sleep 0.02
  done
  echo ">6 s" > "$file"
}
stop_lb() { kill "$LBPID" 2>/dev/null || true; wait "$LBPID" 2>/dev/null || true; sleep 0.2; }

# wrk's numbers: requests/s, p50, p99, failed (non-2xx + socket errors).
wrk_run() {
  local seconds=$1 out=$2
  $(core 1) wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --timeout 5s --latency "$SCHEME://127.0.0.1:$LB_PORT/" > "$out" 2>&1 || true
}
wrk_field() {
  local out=$1
  local rps p50 p99 non2xx sock
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out")
  p99=$(awk '$1=="99%" {print $2}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
  sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$out"); sock=${sock:-0}
  total=$(awk '/requests in/ {print $1}' "$out")
  echo "$rps|$p50|$p99|$((non2xx + sock))|$total"
}

REPORT="$WORK/report.md"
{
  echo "# vitals lb benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Machine: $(nproc) cores, load $(uptime | sed 's/.*load average: //'). Pinning: $PIN. wrk -t1 -c$CONNECTIONS."
  echo "Checks every $CHECK_INTERVAL (timeout $CHECK_TIMEOUT), fall 2, rise 2; three backends, round robin."
  echo
} > "$REPORT"

for n in "${NAMES[@]}"; do start_backend "$n"; done
write_configs

# 1. Throughput.
if [[ $PARTS == *throughput* ]]; then
echo "## Throughput and latency ($DURATION s, $CONNECTIONS connections)" >> "$REPORT"
echo >> "$REPORT"
echo "| target | requests/s | p50 | p99 | failed |" >> "$REPORT"
echo "|---|---|---|---|---|" >> "$REPORT"
$(core 1) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[a]}/" > "$WORK/direct.txt" 2>&1
IFS='|' read -r rps p50 p99 failed total <<< "$(wrk_field "$WORK/direct.txt")"
echo "| one backend directly | $rps | $p50 | $p99 | $failed |" >> "$REPORT"
for lb in $BALANCERS; do
  start_lb $lb
  if [ "$PROFILE" = 1 ] && [ "$lb" = vitals ]; then
    ( sleep 1; perf record -F 2999 -g -p "$LBPID" -o "$WORK/perf.data" -- sleep $(( DURATION - 2 )) >/dev/null 2>&1 ) &
    PERF=$!
  fi
  wrk_run "$DURATION" "$WORK/tp-$lb.txt"
  if [ "$PROFILE" = 1 ] && [ "$lb" = vitals ]; then
    wait "$PERF" || true
    perf report -i "$WORK/perf.data" --no-children -g none --sort dso,symbol --percent-limit 0.5 --stdio 2>/dev/null \
      | grep -v "^#" | grep "%" | sed "s/[[:space:]]*$//" | head -45 > "$WORK/profile.txt" || true
    perf report -i "$WORK/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null \
      | grep -v '^#' | grep '%' | sed 's/[[:space:]]*$//' | head -12 > "$WORK/profile-dso.txt" || true
  fi
  IFS='|' read -r rps p50 p99 failed total <<< "$(wrk_field "$WORK/tp-$lb.txt")"
  echo "| $lb | $rps | $p50 | $p99 | $failed |" >> "$REPORT"
  stop_lb
done
echo >> "$REPORT"
fi

# 1b. Throughput over TLS.
if [[ $PARTS == *tls* ]]; then
write_tls_configs
echo "## Throughput and latency over TLS 1.3 ($DURATION s, $CONNECTIONS kept-alive connections)" >> "$REPORT"
echo >> "$REPORT"
echo "| target | requests/s | p50 | p99 | failed | negotiated |" >> "$REPORT"
echo "|---|---|---|---|---|---|" >> "$REPORT"
for lb in $BALANCERS; do
  start_lb $lb tls
  suite=$(openssl s_client -connect "127.0.0.1:$LB_PORT" -servername lb.test </dev/null 2>/dev/null | awk '/^New, / {print $2, $NF}')
  wrk_run "$DURATION" "$WORK/tls-$lb.txt"
  IFS='|' read -r rps p50 p99 failed total <<< "$(wrk_field "$WORK/tls-$lb.txt")"
  echo "| $lb | $rps | $p50 | $p99 | $failed | $suite |" >> "$REPORT"
  stop_lb
done
echo >> "$REPORT"
fi

# 2. Failover.
if [[ $PARTS == *failover* ]]; then
echo "## Failover ($FAIL_SECONDS s of load, the event at $EVENT_AT s)" >> "$REPORT"
echo >> "$REPORT"
echo "| balancer | event | requests | failed | p99 | out of rotation after | re-admitted after |" >> "$REPORT"
echo "|---|---|---|---|---|---|---|" >> "$REPORT"
for event in kill stop 5xx; do
  for lb in $BALANCERS; do
    stop_backend b; start_backend b
    start_lb $lb
    wrk_run "$FAIL_SECONDS" "$WORK/fail-$lb-$event.txt" &
    WRK=$!
    sleep "$EVENT_AT"
    case $event in
      kill) kill -9 "${BPID[b]}" ;;
      stop) kill -STOP "${BPID[b]}" ;;
      5xx) curl -s -X POST "http://127.0.0.1:${PORT[b]}/fail/on" >/dev/null ;;
    esac
    time_out "$lb" "$WORK/out.txt"
    wait $WRK || true
    readmit="-"
    if [ $event = stop ]; then
      kill -CONT "${BPID[b]}"
      t0=$(date +%s%N)
      # Requests queued during the pause are answered at once; count only fresh ones.
      sleep 0.2
      readmit=">10 s"
      for _ in $(seq 200); do
        before=$(curl -s "http://127.0.0.1:${PORT[b]}/count")
        for _ in 1 2 3; do curl -s "http://127.0.0.1:$LB_PORT/" >/dev/null || true; done
        if [ "$(curl -s "http://127.0.0.1:${PORT[b]}/count")" != "$before" ]; then
          readmit="$(( ($(date +%s%N) - t0) / 1000000 )) ms"
          break
        fi
        sleep 0.05
      done
    fi
    IFS='|' read -r rps p50 p99 failed total <<< "$(wrk_field "$WORK/fail-$lb-$event.txt")"
    echo "| $lb | $event | $total | $failed | $p99 | $(cat "$WORK/out.txt") | $readmit |" >> "$REPORT"
    stop_lb
    [ $event = 5xx ] && curl -s -X POST "http://127.0.0.1:${PORT[b]}/fail/off" >/dev/null
  done
done
fi

# 3. Repeated SIGSTOP (issue 15): the stall watch against the active checks.
if [[ $PARTS == *stall* ]]; then
STOP_TRIALS=${STOP_TRIALS:-50}
stop_backend b; start_backend b
start_lb vitals
$(core 1) wrk -t1 -c8 -d3600s --timeout 10s "http://127.0.0.1:$LB_PORT/" >/dev/null 2>&1 &
WRK=$!
PIDS+=("$WRK")
# Ejections of b so far, from the admin API's /metrics: one during a stop is a false death.
ejections_of_b() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/ejections_total\{/ && /backend="b"/ {n += $NF} END {print n + 0}'
}
ejected_before=$(ejections_of_b)
outs=()
by_checks=0
for _ in $(seq "$STOP_TRIALS"); do
  for _ in $(seq 300); do b_is_out vitals || break; sleep 0.02; done
  sleep 0.5
  kill -STOP "${BPID[b]}"
  time_out vitals "$WORK/out.txt"
  outs+=("$(cut -d' ' -f1 "$WORK/out.txt")")
  curl -s "http://127.0.0.1:$ADMIN_PORT/api/v1/pools" | grep -o '"name":"b"[^}]*' | grep -q '"stall":"s' || by_checks=$((by_checks + 1))
  kill -CONT "${BPID[b]}"
done
false_deaths=$(( $(ejections_of_b) - ejected_before ))
# The same backend killed (gone): KILL_TRIALS times, the time until it is out of rotation;
# then a new one on its port, back in rotation before the next.
KILL_TRIALS=${KILL_TRIALS:-$STOP_TRIALS}
kills=()
for _ in $(seq "$KILL_TRIALS"); do
  for _ in $(seq 300); do b_is_out vitals || break; sleep 0.02; done
  sleep 0.5
  kill -9 "${BPID[b]}"
  time_out vitals "$WORK/out.txt"
  kills+=("$(cut -d' ' -f1 "$WORK/out.txt")")
  wait "${BPID[b]}" 2>/dev/null || true
  start_backend b
done
kill "$WRK" 2>/dev/null || true
stop_lb
sorted=$(printf '%s\n' "${outs[@]}" | grep -v '>' | sort -n)
n=$(echo "$sorted" | grep -c . || true)
killed=$(printf '%s\n' "${kills[@]}" | grep -v '>' | sort -n)
k=$(echo "$killed" | grep -c . || true)
{
  echo "## Repeated SIGSTOP and kill -9 of b under light load (checks every $CHECK_INTERVAL)"
  echo
  echo "| fault | trials | out of rotation: median | max | out by its checks, not by the stall watch | ejected while only stopped (false deaths) |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| SIGSTOP | $n | $(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p") ms | $(echo "$sorted" | tail -1) ms | $by_checks | $false_deaths |"
  echo "| kill -9 | $k | $(echo "$killed" | sed -n "$(( (k + 1) / 2 ))p") ms | $(echo "$killed" | tail -1) ms | — | — |"
  echo
} >> "$REPORT"
fi

if [ -s "$WORK/profile.txt" ]; then
  {
    echo "## Where vitals spends its time (perf, plain throughput run)"
    echo
    echo '```'
    cat "$WORK/profile-dso.txt"
    echo
    cat "$WORK/profile.txt"
    echo '```'
    echo
  } >> "$REPORT"
fi

mkdir -p bench/results
OUT=bench/results/lb-$(date -u +%Y-%m-%d-%H%M%S).md
cp "$REPORT" "$OUT"
cat "$REPORT"
echo
echo "written to $OUT"
