#!/usr/bin/env bash
# Admission throughput: how many session admissions a second the Lua script
# sustains in Redis, Docker left out. The script is read out of
# worker/registry.c, so this measures exactly what the server runs. Each call
# uses a random client IP (so it takes the full admit-and-write path), against
# a private redis-server on a free port.
#   bench/admission.sh [-n REQUESTS] [-c CLIENTS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=200000 C=50
while getopts n:c: o; do case $o in n) N=$OPTARG ;; c) C=$OPTARG ;; *) exit 2 ;; esac; done
command -v redis-benchmark >/dev/null || apt-get install -y -qq redis-tools >/dev/null

# The C string literal admit_lua[] in worker/registry.c, as Lua text.
script=$(/usr/bin/python3 - <<'PY'
import re
src = open("worker/registry.c").read()
body = src[src.index("admit_lua[] ="):]
body = body[:body.index(";\n")]
print(bytes("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body)), "utf-8").decode("unicode_escape"), end="")
PY
)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

now=$(date +%s%3N)
# KEYS: ip active set, ip created zset, host set, session hash; ARGV: now, max_per_ip, per_hour, capacity, id, ttl, fields...
# The host set is per client IP too here: one shared set would only measure its growing size.
echo "admission script: $(printf %s "$script" | wc -c) bytes; $N calls, $C clients, random IPs"
redis-benchmark -p "$port" -n "$N" -c "$C" -r 100000000 -q \
    EVAL "$script" 4 sandboxd:ip:__rand_int__:active sandboxd:ip:__rand_int__:created \
    sandboxd:host:h__rand_int__:sessions sandboxd:session:__rand_int__ \
    "$now" 2 10 64 __rand_int__ 300000 ip 10.0.0.1 host bench state creating created "$now" | tr '\r' '\n' | tail -1 | sed 's/.*: \([0-9.]* requests per second\)/  \1/'
echo "and a session refused at once (same IP, over max_per_ip):"
redis-cli -p "$port" SADD sandboxd:ip:1.2.3.4:active a b >/dev/null
redis-cli -p "$port" HSET sandboxd:session:a x 1 >/dev/null; redis-cli -p "$port" HSET sandboxd:session:b x 1 >/dev/null
redis-benchmark -p "$port" -n "$N" -c "$C" -q EVAL "$script" 4 sandboxd:ip:1.2.3.4:active sandboxd:ip:1.2.3.4:created \
    sandboxd:host:h:sessions sandboxd:session:new "$now" 2 10 64 new 300000 ip 1.2.3.4 | tr '\r' '\n' | tail -1 | sed 's/.*: \([0-9.]* requests per second\)/  \1/'
