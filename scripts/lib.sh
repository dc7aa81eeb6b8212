# shellcheck shell=bash
#
# Shell helpers for running real PostgreSQL and Redis servers on loopback, sourced by
# scripts/test and bench/probe-storm.sh. Not a script of its own: source it.
#
#   ensure_packages [PACKAGE...]   install postgresql and redis-server if their binaries are
#                                  missing, plus any extra Debian packages not yet installed
#   ensure_pip_packages NAME==VER… install Python packages with python3's pip when the version
#                                  asked for is not installed (kubernetes-validate)
#   free_port                      print a TCP port on 127.0.0.1 that nothing listens on,
#                                  below the ephemeral range
#   start_postgres DIR PORT        initdb DIR/data, start postgres (pg_stat_statements
#                                  preloaded) in the background, wait until ready, create the
#                                  extension; logs in DIR/postgres.log
#   start_redis PORT [DIR]         start redis-server in the background, wait for PONG; log in
#                                  DIR/redis-PORT.log (DIR defaults to $TMPDIR or /tmp)
#   stop_servers                   stop every server started above, by its recorded PID
#                                  (SIGINT postgres, SIGTERM redis) and wait until each is gone
#   pg_bin_dir                     print the directory holding postgres, initdb and pg_isready
#
# Servers are only ever stopped by the PIDs recorded here, never by name, so a developer's own
# servers and other runs' servers are left alone. As root, PostgreSQL runs as the `postgres`
# user through `setpriv`, which execs in place: the recorded PID is the server's own.

VITALS_PG_PIDS=()
VITALS_REDIS_PIDS=()
VITALS_APT_UPDATED=${VITALS_APT_UPDATED:-}

# How long a server gets to become ready, and to exit after its stop signal (tenths of a second).
VITALS_READY_TENTHS=${VITALS_READY_TENTHS:-300}
VITALS_STOP_TENTHS=${VITALS_STOP_TENTHS:-300}

vitals_say() { printf '%s\n' "$*" >&2; }
vitals_fail() {
    printf 'error: %s\n' "$*" >&2
    return 1
}

# The directory with the PostgreSQL server binaries: $VITALS_PG_BIN, else the highest
# /usr/lib/postgresql/*/bin that holds `postgres` (the client package alone makes that
# directory too, with psql but no server), else wherever `postgres` is on PATH.
pg_bin_dir() {
    if [[ -n ${VITALS_PG_BIN:-} ]]; then
        if [[ -x $VITALS_PG_BIN/postgres && -x $VITALS_PG_BIN/initdb ]]; then
            printf '%s\n' "$VITALS_PG_BIN"
            return 0
        fi
        vitals_fail "VITALS_PG_BIN=$VITALS_PG_BIN holds no postgres and initdb; point it at e.g. /usr/lib/postgresql/15/bin or unset it"
        return 1
    fi
    local dir
    while read -r dir; do
        if [[ -x $dir/postgres && -x $dir/initdb ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -t/ -k5,5 -V -r)
    local postgres
    postgres=$(command -v postgres 2>/dev/null) || return 1
    postgres=$(readlink -f "$postgres")
    printf '%s\n' "${postgres%/*}"
}

# Whether a Debian package is installed.
_vitals_dpkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

ensure_packages() {
    local missing=()
    pg_bin_dir >/dev/null 2>&1 || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    local pkg
    for pkg in "$@"; do
        _vitals_dpkg_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0

    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 ||
            { vitals_fail "need root (or sudo) to install: ${missing[*]}"; return 1; }
        sudo=(sudo)
    fi
    vitals_say "installing ${missing[*]} (apt-get)…"
    if [[ -z $VITALS_APT_UPDATED ]]; then
        "${sudo[@]}" apt-get update -qq ||
            { vitals_fail "apt-get update failed; is the Debian package mirror reachable?"; return 1; }
        VITALS_APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        { vitals_fail "apt-get install ${missing[*]} failed"; return 1; }
    pg_bin_dir >/dev/null ||
        { vitals_fail "postgresql was installed but no postgres binary was found under /usr/lib/postgresql/*/bin"; return 1; }
    command -v redis-server >/dev/null ||
        { vitals_fail "redis-server was installed but is not on PATH"; return 1; }
}

# Python packages at exact versions, with python3's pip (PyPI), unless already there. A
# Python whose packages are managed by Debian (PEP 668) is told to install anyway: these are
# test tools, pinned, installed by the tests' own script.
ensure_pip_packages() {
    local missing=() spec
    for spec in "$@"; do
        python3 - "${spec%%==*}" "${spec#*==}" <<'PY' 2>/dev/null || missing+=("$spec")
import importlib.metadata, sys
sys.exit(0 if importlib.metadata.version(sys.argv[1]) == sys.argv[2] else 1)
PY
    done
    ((${#missing[@]} == 0)) && return 0
    command -v python3 >/dev/null 2>&1 || { vitals_fail "need python3 (with pip) to install: ${missing[*]}"; return 1; }
    vitals_say "installing ${missing[*]} (pip)…"
    local pip=(python3 -m pip install --quiet --disable-pip-version-check)
    [[ $(id -u) -eq 0 ]] && pip+=(--root-user-action=ignore)
    "${pip[@]}" "${missing[@]}" >/dev/null 2>&1 ||
        "${pip[@]}" --break-system-packages "${missing[@]}" >/dev/null ||
        { vitals_fail "pip install ${missing[*]} failed; is PyPI reachable, and pip installed (apt-get install python3-pip)?"; return 1; }
}

# Whether something accepts TCP connections on 127.0.0.1:PORT.
_vitals_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Ports are drawn from below the kernel's ephemeral range (ip_local_port_range), because any
# outgoing connection may take a port inside it, and under a load generator thousands do.
free_port() {
    local low=32768 port tries
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 11000)) || low=32768
    for tries in $(seq 1 100); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
        if ! _vitals_port_open "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    vitals_fail "found no free port on 127.0.0.1 after $tries tries"
}

_vitals_tail() {
    local file=$1
    if [[ -s $file ]]; then
        vitals_say "--- last lines of $file ---"
        tail -n 30 "$file" >&2
        vitals_say "---"
    fi
}

start_postgres() {
    local dir=${1:?start_postgres DIR PORT} port=${2:?start_postgres DIR PORT}
    local bin
    bin=$(pg_bin_dir) || { vitals_fail "no PostgreSQL server binaries; run ensure_packages first"; return 1; }
    local as_pg=()
    if [[ $(id -u) -eq 0 ]]; then
        id -u postgres >/dev/null 2>&1 ||
            { vitals_fail "running as root but there is no postgres user; install postgresql"; return 1; }
        as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$dir"
    fi

    if [[ ! -f $dir/data/PG_VERSION ]]; then
        (cd "$dir" && "${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
            --no-sync --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1) ||
            { _vitals_tail "$dir/initdb.log"; vitals_fail "initdb -D $dir/data failed"; return 1; }
    fi

    # A plain background command: bash forks and execs it, so $! is setpriv's PID, which
    # setpriv keeps when it execs postgres.
    (cd "$dir" && exec "${as_pg[@]}" "$bin/postgres" -D "$dir/data" \
        -c listen_addresses=127.0.0.1 -c "port=$port" -c "unix_socket_directories=$dir" \
        -c fsync=off -c shared_preload_libraries=pg_stat_statements \
        </dev/null >>"$dir/postgres.log" 2>&1) &
    local pid=$!
    VITALS_PG_PIDS+=("$pid")

    local i
    for ((i = 0; i < VITALS_READY_TENTHS; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            _vitals_tail "$dir/postgres.log"
            vitals_fail "postgresql on 127.0.0.1:$port exited while starting (log: $dir/postgres.log)"
            return 1
        fi
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            break
        fi
        sleep 0.1
    done
    if ((i == VITALS_READY_TENTHS)); then
        _vitals_tail "$dir/postgres.log"
        vitals_fail "postgresql on 127.0.0.1:$port was not ready after $((VITALS_READY_TENTHS / 10))s"
        return 1
    fi

    local psql=$bin/psql
    [[ -x $psql ]] || psql=$(command -v psql) ||
        { vitals_fail "no psql found beside postgres or on PATH; install postgresql-client"; return 1; }
    "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null ||
        { vitals_fail "could not create the pg_stat_statements extension on 127.0.0.1:$port"; return 1; }
}

start_redis() {
    local port=${1:?start_redis PORT [DIR]} dir=${2:-${TMPDIR:-/tmp}}
    local bin=${VITALS_REDIS_BIN:-}
    [[ -n $bin && -d $bin ]] && bin=$bin/redis-server
    [[ -n $bin ]] || bin=$(command -v redis-server) ||
        { vitals_fail "redis-server not found; run ensure_packages first"; return 1; }
    mkdir -p "$dir"
    local log=$dir/redis-$port.log
    "$bin" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
        </dev/null >>"$log" 2>&1 &
    local pid=$!
    VITALS_REDIS_PIDS+=("$pid")

    local i answer
    for ((i = 0; i < VITALS_READY_TENTHS; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            _vitals_tail "$log"
            vitals_fail "redis on 127.0.0.1:$port exited while starting (log: $log)"
            return 1
        fi
        answer=$(_vitals_redis_ping "$port" 2>/dev/null || true)
        [[ $answer == +PONG* ]] && return 0
        sleep 0.1
    done
    _vitals_tail "$log"
    vitals_fail "redis on 127.0.0.1:$port did not answer PING after $((VITALS_READY_TENTHS / 10))s"
}

# One RESP PING over bash's /dev/tcp (no redis-cli needed); prints the answer line.
_vitals_redis_ping() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 line <&3 || true
    exec 3>&- 3<&-
    printf '%s\n' "${line%$'\r'}"
}

# Sends SIGNAL to PID and waits until it is gone; SIGKILL if it ignores that for too long.
_vitals_stop_pid() {
    local pid=$1 sig=$2 name=$3 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # in case something paused it
    for ((i = 0; i < VITALS_STOP_TENTHS; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    vitals_say "warning: $name (pid $pid) ignored SIG$sig for $((VITALS_STOP_TENTHS / 10))s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_servers() {
    local pid
    for pid in "${VITALS_PG_PIDS[@]}"; do
        _vitals_stop_pid "$pid" INT postgresql
    done
    for pid in "${VITALS_REDIS_PIDS[@]}"; do
        _vitals_stop_pid "$pid" TERM redis
    done
    VITALS_PG_PIDS=()
    VITALS_REDIS_PIDS=()
}
