#!/usr/bin/env bash
# Ensure dockerd is running with the gVisor runtime "runsc" registered.
# Idempotent: safe to run any number of times. Needs root.
set -euo pipefail

CONF=/etc/docker/daemon.json
LOG=/var/log/dockerd.log
PIDFILE=/var/run/docker.pid
RUNSC=$(command -v runsc) || { echo "engine-up: runsc not found (apt-get install runsc)" >&2; exit 1; }

log() { echo "engine-up: $*"; }

# 1. daemon.json: merge runtimes.runsc in, keep every other key.
mkdir -p "$(dirname "$CONF")"
[ -s "$CONF" ] || echo '{}' > "$CONF"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if command -v jq >/dev/null; then
    jq --arg p "$RUNSC" '.runtimes.runsc = {path: $p, runtimeArgs: ["--network=none"]}' "$CONF" > "$tmp"
else
    /usr/bin/python3 - "$CONF" "$RUNSC" > "$tmp" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[2], "runtimeArgs": ["--network=none"]}
print(json.dumps(c, indent=2))
PY
fi
changed=0
if ! cmp -s "$tmp" "$CONF"; then
    cat "$tmp" > "$CONF"; changed=1; log "updated $CONF"
fi

# 2. dockerd: start, or restart if runsc is missing / the config changed.
engine_ok()      { docker info >/dev/null 2>&1; }
runsc_known()    { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }
dockerd_pid()    { [ -s "$PIDFILE" ] && cat "$PIDFILE" || pgrep -xo dockerd || true; }

start_dockerd() {
    log "starting dockerd (log: $LOG)"
    setsid nohup dockerd >>"$LOG" 2>&1 < /dev/null &
    for _ in $(seq 60); do engine_ok && return 0; sleep 1; done
    echo "engine-up: dockerd did not come up in 60 s; see $LOG" >&2; exit 1
}

stop_dockerd() {
    local pid; pid=$(dockerd_pid)
    [ -n "$pid" ] || return 0
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
    echo "engine-up: dockerd (pid $pid) did not exit in 30 s" >&2; exit 1
}

if ! engine_ok; then
    [ -z "$(dockerd_pid)" ] || stop_dockerd   # a hung/half-started daemon
    start_dockerd
elif [ "$changed" = 1 ] || ! runsc_known; then
    stop_dockerd
    start_dockerd
fi
runsc_known || { echo "engine-up: runsc still not in 'docker info' Runtimes" >&2; exit 1; }
log "ok: $(docker info --format 'server {{.ServerVersion}}, runtimes {{range $k, $v := .Runtimes}}{{$k}} {{end}}')"
