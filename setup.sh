#!/usr/bin/env bash
# One set-up for a fresh Debian 12 machine (as root), then run or test sandboxd.
#   ./setup.sh run    install, build, start Redis and dockerd, build the images, serve on :3001
#   ./setup.sh test   the same set-up, then `make check`
#   ./setup.sh deps   only the set-up
# Idempotent: each step checks what is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PACKAGES=(
    build-essential autoconf automake pkg-config                      # build
    libh2o-evloop-dev libwslay-dev libssl-dev libyaml-dev              # libraries
    libjansson-dev libmsgpack-dev libhiredis-dev
    redis-server redis-tools docker.io runsc                          # services
    busybox-static debootstrap gcc libc6-dev jq curl                  # images (docker/)
    perl libjson-pp-perl libprotocol-websocket-perl wrk               # tests and bench
    chromium caddy prometheus systemd man-db                          # page, browser test, ops tests
)
# Node.js and npm: this machine image ships its own (Debian's npm would conflict with it); Debian's otherwise.
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)

say() { printf 'setup: %s\n' "$*"; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_page() {
    # xterm.js for the terminal page comes from npm, never copied into the repo.
    [ -f conf/page/package.json ] || return 0
    [ -d conf/page/node_modules/@xterm/xterm ] && [ conf/page/node_modules -nt conf/page/package.json ] && return 0
    say "npm install for the terminal page (conf/page)"
    npm install --no-audit --no-fund --loglevel=error --prefix conf/page
}

build() {
    [ -x configure ] || autoreconf -fi
    [ -f Makefile ] || ./configure ${CONFIGURE_FLAGS:-}
    make -j"$(nproc)"
}

start_redis() {
    redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0
    say "starting redis-server on 127.0.0.1:6379"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir /var/lib/redis \
        --logfile /var/log/redis/redis-sandboxd.log
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    say "redis-server did not answer in 5 s" >&2
    return 1
}

raise_pid_max() {
    # Under gVisor a sandbox's host threads count against the host's pids (up to
    # its PidsLimit, 6200 for container.pids 50): 32768 would let a few fork bombs
    # exhaust the host. 4194304 is the kernel's ceiling on 64-bit.
    local cur; cur=$(cat /proc/sys/kernel/pid_max)
    [ "$cur" -ge 4194304 ] && return 0
    say "raising kernel.pid_max from $cur to 4194304"
    sysctl -q -w kernel.pid_max=4194304 || say "could not raise kernel.pid_max (read-only /proc/sys?)" >&2
}

setup() {
    [ "$(id -u)" = 0 ] || { say "run as root (it installs packages and starts dockerd)" >&2; exit 1; }
    install_packages
    build
    install_page
    raise_pid_max
    start_redis
    docker/engine-up.sh
    docker/build-images.sh
}

case "${1:-}" in
    run)
        setup
        say "serving on http://127.0.0.1:3001 (Ctrl-C stops)"
        exec ./sandboxd -c conf/sandboxd.yaml ;;
    test)
        setup
        make check ;;
    deps)
        setup ;;
    *)
        sed -n '2,6p' "$0"
        exit 2 ;;
esac
