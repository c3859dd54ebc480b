#!/usr/bin/env bash
# Build the local images sandboxd needs (no registry involved):
#   sandboxd/test:busybox          tiny test image from Debian's busybox-static
#   sandboxd/debian-base:bookworm  debootstrap (minbase) rootfs, docker-imported
#   sandboxd/sandbox:bookworm      production image, from ./Dockerfile
# Usage: build-images.sh [--force] [--only busybox|sandbox]
# Existing images are kept unless --force. The debootstrap rootfs is cached as
# a tarball in /var/cache/sandboxd/ (delete it to download packages again).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DOCKER_BUILDKIT=0
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INCLUDE=bash,git,locales,ca-certificates,python3,procps,less,vim-tiny,nano,curl
CACHE=/var/cache/sandboxd
TARBALL=$CACHE/debian-$SUITE-minbase-$(echo "$INCLUDE" | md5sum | cut -c1-8).tar
IMG_TEST=sandboxd/test:busybox
IMG_BASE=sandboxd/debian-base:$SUITE
IMG_SANDBOX=sandboxd/sandbox:$SUITE

FORCE=0 ONLY=all
while [ $# -gt 0 ]; do
    case $1 in
        --force) FORCE=1 ;;
        --only) ONLY=${2:?--only needs busybox or sandbox}; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
case $ONLY in all|busybox|sandbox) ;; *) echo "--only busybox|sandbox" >&2; exit 2 ;; esac
for c in docker tar; do command -v $c >/dev/null || { echo "missing: $c" >&2; exit 1; }; done
[ "$ONLY" = busybox ] || for c in debootstrap gcc; do
    command -v $c >/dev/null || { echo "missing: $c (apt-get install debootstrap gcc libc6-dev)" >&2; exit 1; }; done
[ "$ONLY" = sandbox ] || [ -x /bin/busybox ] || { echo "missing: /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }

LOG=$(mktemp /tmp/sandboxd-build.XXXXXX.log)
WORK=$(mktemp -d /var/tmp/sandboxd-build.XXXXXX)
trap 'rm -rf --one-file-system "$WORK"' EXIT
exec 3>&2   # the ERR trap may fire inside a step whose stderr goes to $LOG
trap 'printf "\nFAILED; last lines of %s:\n" "$LOG" >&3; tail -n 20 "$LOG" >&3' ERR

# step "what" command...: run quietly (output to $LOG), print one line with the time.
step() {
    local what=$1 t0; shift; t0=$(date +%s%N)
    printf 'build-images: %-55s' "$what ..."
    "$@" >>"$LOG" 2>&1
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf ' %3d.%03d s\n' $((ms / 1000)) $((ms % 1000))
}
have() { docker image inspect "$1" >/dev/null 2>&1; }
need() { [ "$FORCE" = 1 ] || ! have "$1" || { echo "build-images: $1 exists (use --force to rebuild)"; false; }; }

busybox_rootfs() {
    local d=$WORK/busybox
    mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,home/sandbox,proc,sys,dev}
    cp /bin/busybox "$d/bin/busybox"
    chroot "$d" /bin/busybox --install -s          # applet symlinks -> /bin/busybox
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh' > "$d/etc/passwd"
    printf '%s\n' 'root:x:0:' 'sandbox:x:1000:' > "$d/etc/group"
    chmod 1777 "$d/tmp"; chmod 700 "$d/root"; chown 1000:1000 "$d/home/sandbox"
}
busybox_import() {
    tar -C "$WORK/busybox" -c . | docker import --change 'CMD ["/bin/sh"]' \
        --change 'USER sandbox' --change 'WORKDIR /home/sandbox' - "$IMG_TEST"
}
debootstrap_tarball() {
    local d=$WORK/rootfs
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$d" "$MIRROR"
    rm -rf "$d"/var/cache/apt/archives/*.deb "$d"/var/lib/apt/lists/*
    mkdir -p "$CACHE"
    tar -C "$d" -c . > "$TARBALL.part" && mv "$TARBALL.part" "$TARBALL"
}
base_import()   { docker import - "$IMG_BASE" < "$TARBALL"; }
sandbox_build() {   # context: just the Dockerfile and the compiled statx shim
    mkdir -p "$WORK/ctx"; cp "$HERE/Dockerfile" "$WORK/ctx/"
    gcc -shared -fPIC -O2 -Wall -o "$WORK/ctx/statx-fix.so" "$HERE/statx-fix.c" -ldl
    docker build --no-cache -t "$IMG_SANDBOX" "$WORK/ctx"
}

img_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
OLD_IDS="$(img_id "$IMG_SANDBOX") $(img_id "$IMG_BASE") $(img_id "$IMG_TEST")"

if [ "$ONLY" != sandbox ] && need "$IMG_TEST"; then
    step "busybox rootfs" busybox_rootfs
    step "import $IMG_TEST" busybox_import
fi
if [ "$ONLY" != busybox ]; then
    if need "$IMG_BASE"; then
        if [ -s "$TARBALL" ]; then echo "build-images: using cached $TARBALL"
        else step "debootstrap $SUITE minbase (about a minute)" debootstrap_tarball; fi
        step "import $IMG_BASE" base_import
        FORCE=1   # a new base means the sandbox image must be rebuilt too
    fi
    if need "$IMG_SANDBOX"; then step "docker build $IMG_SANDBOX" sandbox_build; fi
fi
for id in $OLD_IDS; do   # drop images replaced by --force (kept if a container uses them)
    case " $(img_id "$IMG_SANDBOX") $(img_id "$IMG_BASE") $(img_id "$IMG_TEST") " in
        *" $id "*) ;; *) docker rmi "$id" >/dev/null 2>&1 && echo "build-images: removed old image ${id:7:12}" || true ;;
    esac
done
for i in "$IMG_TEST" "$IMG_BASE" "$IMG_SANDBOX"; do
    have "$i" && docker image inspect -f "build-images: $i {{.Id}} {{.Size}} bytes" "$i" | sed 's/sha256:\(.\{12\}\)[^ ]*/\1/' || true
done
rm -f "$LOG"
