#!/usr/bin/env bash
# GET /health req/s of sandboxd vs. a private nginx (2 workers, static file with
# the same body), each measured alone with wrk. See bench/README.
# usage: bench/health.sh [-d SECONDS] [-c CONNS]
# env: SBX_BIN (the binary), NGINX_BODY=file (default: static file) | inline (`return 200`)
set -euo pipefail

DUR=10 CONNS=64 THREADS=2 WARMUP=2
while getopts d:c:h opt; do
  case $opt in
    d) DUR=$OPTARG ;;
    c) CONNS=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS] [-c CONNS]" >&2; exit 2 ;;
  esac
done
SBX_BIN=${SBX_BIN:-$(dirname "$0")/../sandboxd}
NGINX_BODY=${NGINX_BODY:-file}
case $NGINX_BODY in file|inline) ;; *) echo "NGINX_BODY must be file or inline" >&2; exit 2 ;; esac
[ -x "$SBX_BIN" ] || { echo "no sandboxd binary at $SBX_BIN (run make)" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v wrk >/dev/null || [ ! -x "$NGINX" ] || ! command -v curl >/dev/null; then
  # A policy-rc.d (as in Docker images) keeps the package's own nginx service
  # from starting on port 80; add a temporary one if the host has none.
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d; added_policy=1
  fi
  pkgs="wrk curl nginx-light"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y $pkgs || { $SUDO apt-get update && $SUDO apt-get install -y $pkgs; } ||
    { $SUDO apt-get install -y wrk curl nginx; }
  [ -z "$added_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

# --- temp dir, cleanup -------------------------------------------------------
TMP=$(mktemp -d /tmp/sbx-bench.XXXXXX)
chmod 755 "$TMP"                      # nginx workers (nobody) read health.json
RUNNING=()                            # pids of servers still up

stop() {                              # stop PID: SIGQUIT, wait up to 10 s, then SIGKILL
  local pid=$1 i
  kill -QUIT "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "pid $pid still alive after 10 s, killing" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${RUNNING[@]}"; do stop "$pid"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
  else
    local p
    while p=$((20000 + RANDOM % 30000)); ss -ltnH "sport = :$p" | grep -q .; do :; done
    echo "$p"
  fi
}

wait_http() {                         # wait_http URL LOG: up to 10 s
  local i
  for i in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1 within 10 s; log:" >&2; cat "$2" >&2; exit 1
}

# run_wrk NAME URL: warm-up, then the measure; fills RPS[NAME], P50[NAME], P99[NAME]
declare -A RPS P50 P99
run_wrk() {
  local name=$1 url=$2 out=$TMP/wrk-$1.txt
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$url" >"$out"
  RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  P50[$name]=$(awk '$1 == "50%" {print $2}' "$out")
  P99[$name]=$(awk '$1 == "99%" {print $2}' "$out")
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    echo "warning: $name:" >&2; grep -E 'Non-2xx|Socket errors' "$out" >&2
  fi
}

echo "wrk -t$THREADS -c$CONNS -d${DUR}s --latency (after a ${WARMUP}s warm-up), $(nproc) CPUs, one server at a time"

# --- sandboxd ----------------------------------------------------------------
SBX_PORT=$(free_port)
cat >"$TMP/sbx.yaml" <<EOF
listen: [127.0.0.1:$SBX_PORT]
workers: 2
pid_file: $TMP/sbx.pid
log: {level: warn}
EOF
"$SBX_BIN" -c "$TMP/sbx.yaml" >"$TMP/sbx.log" 2>&1 &
RUNNING=($!)
wait_http "http://127.0.0.1:$SBX_PORT/health" "$TMP/sbx.log"
[ "$(cat "$TMP/sbx.pid")" = "${RUNNING[0]}" ] || { echo "pid file != started pid" >&2; exit 1; }
curl -sf "http://127.0.0.1:$SBX_PORT/health" >"$TMP/health.json"   # nginx serves this same body
run_wrk sandboxd "http://127.0.0.1:$SBX_PORT/health"
stop "$(cat "$TMP/sbx.pid")"; RUNNING=()            # the master; it runs in the foreground

# --- nginx (private instance: own prefix, config, pid, logs) -----------------
NGX_PORT=$(free_port)
if [ "$NGINX_BODY" = file ]; then NGX_LOC="alias $TMP/health.json;"
else NGX_LOC="return 200 '$(cat "$TMP/health.json")';"; fi   # the body has no ' nor $
mkdir -p "$TMP/ngx"
cat >"$TMP/ngx/nginx.conf" <<EOF
worker_processes 2;
pid $TMP/ngx/nginx.pid;
error_log $TMP/ngx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/ngx/body;
  proxy_temp_path $TMP/ngx/proxy;
  fastcgi_temp_path $TMP/ngx/fastcgi;
  uwsgi_temp_path $TMP/ngx/uwsgi;
  scgi_temp_path $TMP/ngx/scgi;
  keepalive_requests 1000000;    # like sandboxd: no per-connection request cap
  server {
    listen 127.0.0.1:$NGX_PORT;
    location = /health { default_type application/json; $NGX_LOC }
  }
}
EOF
"$NGINX" -p "$TMP/ngx" -e "$TMP/ngx/error.log" -c "$TMP/ngx/nginx.conf" -g 'daemon off;' \
  >"$TMP/ngx/stderr.log" 2>&1 &
RUNNING=($!)
wait_http "http://127.0.0.1:$NGX_PORT/health" "$TMP/ngx/error.log"
run_wrk nginx "http://127.0.0.1:$NGX_PORT/health"
stop "${RUNNING[0]}"; RUNNING=()

# --- report ------------------------------------------------------------------
RATIO=$(awk -v a="${RPS[sandboxd]}" -v b="${RPS[nginx]}" 'BEGIN {printf "%.2f", a / b}')
echo "body: $(wc -c <"$TMP/health.json") bytes; $("$NGINX" -v 2>&1 | sed 's/.*: //'), body from $NGINX_BODY"
printf '%-10s %12s %10s %10s\n' server req/s p50 p99
for s in sandboxd nginx; do
  printf '%-10s %12s %10s %10s\n' "$s" "${RPS[$s]}" "${P50[$s]}" "${P99[$s]}"
done
echo "ratio sandboxd/nginx: $RATIO"
echo "RESULT sandboxd_rps=${RPS[sandboxd]} nginx_rps=${RPS[nginx]} ratio=$RATIO"
