# Shared set-up of the bench scripts (sourced, not run): options, release
# binaries, a temp dir torn down by an EXIT trap, the test image, a private
# berthd and, when available, a private dockerd 20.10.
# shellcheck shell=bash
RUNS=30
WARMUP=3
OUT=""
BUILD=1
DOCS=""
PARALLEL=100
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --docs) DOCS=$2; shift 2 ;;
        --parallel) PARALLEL=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
DOCKER_CLI=${DOCKER_CLI:-$(command -v docker || true)}
IMAGE=berth-test/busybox:latest
BIP=${BENCH_BIP:-10.213.77.1/24}
# berthd's own default bridge and subnet (and so its own nft table
# berth-<bridge>), never the shared berth0 of another berthd on this host.
BERTH_BRIDGE=bbench$(( $$ % 100000 ))
BERTH_BIP=${BENCH_BERTH_BIP:-10.214.$(( $$ % 250 )).1/24}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in hyperfine jq python3; do
    command -v "$t" >/dev/null || die "$t not found"
done
[ -x "$RUNC" ] || die "runc not found"

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p berth -p berth-runtime-bin"
    (cd "$REPO" && cargo build --release -q -p berth -p berth-runtime-bin) || die "build failed"
fi
REL=${BERTH_BIN_DIR:-$(cd "$REPO" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | jq -r .target_directory)/release}
BERTH=$REL/berth
BERTHD=$REL/berthd
BRT=$REL/berth-runtime
for b in "$BERTH" "$BERTHD" "$BRT"; do
    [ -x "$b" ] || die "$b missing (cargo build --release -p berth -p berth-runtime-bin)"
done

# ---------------------------------------------------------------- temp dir + cleanup
T=$(mktemp -d /tmp/berth-bench.XXXXXX)
chmod 711 "$T"
export DOCKER_CONFIG=$T/docker-cli-config   # never touch ~/.docker
mkdir -p "$DOCKER_CONFIG"
BERTHD_PID=""
DOCKERD_PID=""
DOCKER_OK=0
DOCKER_CGROUP=berth-bench-$$
HAD_DOCKER0=0
ip link show docker0 >/dev/null 2>&1 && HAD_DOCKER0=1
CTRD_S_BEFORE=$(ls /run/containerd/s 2>/dev/null | sort || true)
# dockerd 20.10 writes its libtrust key to /etc/docker/key.json whatever the
# flags say; remove it afterwards if it was not there before.
HAD_ETC_DOCKER=0 HAD_DOCKER_KEY=0
[ -e /etc/docker ] && HAD_ETC_DOCKER=1
[ -e /etc/docker/key.json ] && HAD_DOCKER_KEY=1

stop_pid() { # pid name
    local pid=$1 name=$2 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$name ($pid) did not stop on TERM, killing"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    log "cleaning up"
    # Containers first, while the daemons are still up.
    if [ -n "$BERTHD_PID" ] && kill -0 "$BERTHD_PID" 2>/dev/null; then
        ids=$("$BERTH" -H "unix://$T/berthd.sock" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$BERTH" -H "unix://$T/berthd.sock" rm -f $ids >/dev/null 2>&1
    fi
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        ids=$("$DOCKER_CLI" -H "unix://$T/dockerd.sock" ps -aq 2>/dev/null)
        [ -n "$ids" ] && "$DOCKER_CLI" -H "unix://$T/dockerd.sock" rm -f $ids >/dev/null 2>&1
    fi
    # runc / berth-runtime containers from the bundle benchmarks (normally
    # already deleted by `run`).
    for id in $("$RUNC" --root "$T/runc-state" list -q 2>/dev/null); do
        "$RUNC" --root "$T/runc-state" delete -f "$id" >/dev/null 2>&1
    done
    # berth-runtime has no `list`: one state dir per container.
    for id in $(ls "$T/brt-state" 2>/dev/null); do
        "$BRT" --root "$T/brt-state" delete -f "$id" >/dev/null 2>&1
    done
    stop_pid "$BERTHD_PID" berthd
    stop_pid "$DOCKERD_PID" dockerd
    # dockerd's own containerd and any shim still alive that belongs to us.
    for pid in $(pgrep -f -- "$T/" 2>/dev/null); do
        [ "$pid" = $$ ] && continue
        kill -KILL "$pid" 2>/dev/null
    done
    sleep 0.2
    # Unmount everything under the temp dir, deepest first.
    findmnt -rn -o TARGET 2>/dev/null | grep -F "$T/" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    # berthd's bridge and nft table.
    ip link del "$BERTH_BRIDGE" 2>/dev/null
    nft delete table ip "berth-$BERTH_BRIDGE" 2>/dev/null
    # Docker leftovers outside the temp dir.
    if [ "$HAD_DOCKER0" = 0 ] && ip link show docker0 >/dev/null 2>&1; then
        ip link del docker0 2>/dev/null
    fi
    for c in /sys/fs/cgroup/*/"$DOCKER_CGROUP" /sys/fs/cgroup/*/*/"$DOCKER_CGROUP"; do
        [ -d "$c" ] || continue
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    if [ -d /run/containerd/s ]; then
        for s in $(ls /run/containerd/s 2>/dev/null); do
            grep -qxF "$s" <<<"$CTRD_S_BEFORE" || rm -f "/run/containerd/s/$s"
        done
        rmdir /run/containerd/s /run/containerd 2>/dev/null
    fi
    [ "$HAD_DOCKER_KEY" = 0 ] && rm -f /etc/docker/key.json
    [ "$HAD_ETC_DOCKER" = 0 ] && rmdir /etc/docker 2>/dev/null
    rm -rf "$T" 2>/dev/null || { sleep 1; rm -rf "$T"; } || log "could not remove $T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_sock() { # sock pid name
    local i
    for i in $(seq 1 300); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# ---------------------------------------------------------------- image
log "building test image in $T/img"
"$REPO/scripts/mkimage.sh" "$T/img" >/dev/null

# ---------------------------------------------------------------- berthd
log "starting berthd ($BERTHD)"
"$BERTHD" --data-root "$T/berthd-data" --exec-root "$T/berthd-exec" \
    -H "unix://$T/berthd.sock" --pidfile "$T/berthd.pid" \
    --bridge "$BERTH_BRIDGE" --bip "$BERTH_BIP" \
    --config-file "$T/no-berthd.json" ${BERTHD_EXTRA_ARGS:-} >"$T/berthd.log" 2>&1 &
BERTHD_PID=$!
wait_sock "$T/berthd.sock" "$BERTHD_PID" berthd || { cat "$T/berthd.log" >&2; die "berthd did not start"; }
BSOCK=unix://$T/berthd.sock
"$BERTH" -H "$BSOCK" load -i "$T/img/busybox.tar" >/dev/null
"$BERTH" -H "$BSOCK" run --rm "$IMAGE" true || { tail -20 "$T/berthd.log" >&2; die "berth run smoke test failed"; }

# ---------------------------------------------------------------- dockerd
DSOCK=unix://$T/dockerd.sock
if [ ! -x "$DOCKERD" ]; then
    log "SKIP Docker columns: $DOCKERD not found"
elif [ -z "$DOCKER_CLI" ]; then
    log "SKIP Docker columns: no docker CLI"
else
    log "starting dockerd ($DOCKERD)"
    echo '{}' >"$T/dockerd.json"
    # No --containerd: dockerd 20.10 supervises its own containerd with its
    # state under --exec-root/containerd and its root under
    # --data-root/containerd.
    "$DOCKERD" --data-root "$T/dockerd-data" --exec-root "$T/dockerd-exec" \
        -H "$DSOCK" --pidfile "$T/dockerd.pid" --config-file "$T/dockerd.json" \
        --bip "$BIP" --iptables=false --ip-forward=false --ip-masq=false \
        --userland-proxy=false --cgroup-parent "/$DOCKER_CGROUP" \
        --storage-driver overlay2 >"$T/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    if wait_sock "$T/dockerd.sock" "$DOCKERD_PID" dockerd \
        && for i in $(seq 1 100); do "$DOCKER_CLI" -H "$DSOCK" version >/dev/null 2>&1 && break; sleep 0.1; done \
        && "$DOCKER_CLI" -H "$DSOCK" load -i "$T/img/busybox.tar" >/dev/null \
        && "$DOCKER_CLI" -H "$DSOCK" run --rm "$IMAGE" true; then
        DOCKER_OK=1
    else
        tail -30 "$T/dockerd.log" >&2
        log "SKIP Docker columns: dockerd failed to start or run the image"
    fi
fi
