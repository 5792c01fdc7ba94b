#!/usr/bin/env bash
# Start-up latency and memory benchmark: berth vs Docker (dockerd 20.10) vs
# bare runc vs berth-runtime.
#
#   bench/run.sh [--runs N] [--warmup N] [--out DIR] [--no-build] [--docs FILE] [--parallel N]
#
# Needs root, hyperfine, jq, python3, busybox-static (for scripts/mkimage.sh),
# runc. Docker columns need /usr/sbin/dockerd (or $DOCKERD) and a docker CLI;
# they are skipped with a message otherwise. Everything it starts lives under
# one temp dir (daemons, sockets, data/exec roots, bundles) and is torn down by
# an EXIT trap, even on failure. The host firewall and sysctls are left alone
# (dockerd runs with --iptables=false --ip-forward=false).
#
# Results: a table on stdout, hyperfine JSON + summary under --out (default:
# the temp dir is removed, so pass --out to keep them), and with --docs FILE
# the table is written into that markdown file between the
# <!-- bench:begin --> / <!-- bench:end --> markers.
set -euo pipefail

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
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
DOCKER_CLI=${DOCKER_CLI:-$(command -v docker || true)}
IMAGE=berth-test/busybox:latest
BIP=${BENCH_BIP:-10.213.77.1/24}

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
    --config-file "$T/no-berthd.json" >"$T/berthd.log" 2>&1 &
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

# ---------------------------------------------------------------- OCI bundle
log "building OCI bundle in $T/bundle"
B=$T/bundle
mkdir -p "$B/rootfs"
tar -xf "$T/img/busybox-rootfs.tar" -C "$B/rootfs"
(cd "$B" && "$RUNC" spec)
jq '.process.args = ["true"] | .process.terminal = false' "$B/config.json" >"$B/config.json.new"
mv "$B/config.json.new" "$B/config.json"
mkdir -p "$T/runc-state" "$T/brt-state"
"$RUNC" --root "$T/runc-state" run --bundle "$B" bench-smoke </dev/null || die "runc run smoke test failed"
"$BRT" --root "$T/brt-state" run --bundle "$B" bench-smoke </dev/null || die "berth-runtime run smoke test failed"
[ -z "$("$RUNC" --root "$T/runc-state" list -q)" ] || log "note: runc run left a container behind"
[ -z "$(ls "$T/brt-state")" ] || log "note: berth-runtime run left a container behind"

# ---------------------------------------------------------------- latency
# bash as the hyperfine shell so ${EPOCHREALTIME} gives every runc /
# berth-runtime run a unique container id; hyperfine subtracts the shell's
# own start-up time.
NAMES=()
CMDS=()
add() { NAMES+=("$1"); CMDS+=("$2"); }
add "berth run"                 "$BERTH -H $BSOCK run --rm $IMAGE true"
if [ "$DOCKER_OK" = 1 ]; then
    add "docker run (dockerd)"  "$DOCKER_CLI -H $DSOCK run --rm $IMAGE true"
    add "docker run --network none (dockerd)" "$DOCKER_CLI -H $DSOCK run --rm --network none $IMAGE true"
fi
if [ -n "$DOCKER_CLI" ]; then
    add "docker run (berthd)"   "$DOCKER_CLI -H $BSOCK run --rm $IMAGE true"
fi
add "runc run"                  "$RUNC --root $T/runc-state run --bundle $B b-\${EPOCHREALTIME/./} </dev/null"
add "berth-runtime run"         "$BRT --root $T/brt-state run --bundle $B b-\${EPOCHREALTIME/./} </dev/null"

RES=$T/results
mkdir -p "$RES"
for i in "${!NAMES[@]}"; do
    log "hyperfine: ${NAMES[$i]}"
    hyperfine --shell bash --warmup "$WARMUP" --runs "$RUNS" --style basic \
        --export-json "$RES/$i.json" -n "${NAMES[$i]}" "${CMDS[$i]}" >&2
done

# mean/stddev in ms for bench index i
stat_of() { jq -r ".results[0].$2 * 1000" "$RES/$1.json"; }
idx_of() { local i; for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
mean_of() { local i; i=$(idx_of "$1"); [ "$i" -ge 0 ] && stat_of "$i" mean || echo ""; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo "n/a"; }

# ---------------------------------------------------------------- memory
log "memory"
sleep 1
BERTHD_RSS=$(rss_kb "$BERTHD_PID")
"$BERTH" -H "$BSOCK" run -d --name bench-sleep "$IMAGE" sleep 30 >"$T/berth-sleep.id"
BCID=$(cat "$T/berth-sleep.id")
sleep 1
SHIM_PID=""
# the shim's command line is `berth-runtime shim --config <exec-root>/...`
for p in $(pgrep -f 'berth-runtime shim' || true); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$T/" && { SHIM_PID=$p; break; }
done
SHIM_RSS=$([ -n "$SHIM_PID" ] && rss_kb "$SHIM_PID" || echo 0)
SHIM_CMD=$([ -n "$SHIM_PID" ] && tr '\0' ' ' <"/proc/$SHIM_PID/cmdline" || echo "not found")
BERTHD_RSS_BUSY=$(rss_kb "$BERTHD_PID")
"$BERTH" -H "$BSOCK" rm -f bench-sleep >/dev/null 2>&1 || true

DOCKERD_RSS=0 CTRD_RSS=0 DSHIM_RSS=0 CTRD_PID="" DSHIM_PID=""
if [ "$DOCKER_OK" = 1 ]; then
    DOCKERD_RSS=$(rss_kb "$DOCKERD_PID")
    CTRD_PID=$(pgrep -P "$DOCKERD_PID" -x containerd | head -1 || true)
    CTRD_RSS=$([ -n "$CTRD_PID" ] && rss_kb "$CTRD_PID" || echo 0)
    DCID=$("$DOCKER_CLI" -H "$DSOCK" run -d --name bench-sleep "$IMAGE" sleep 30 2>/dev/null)
    sleep 1
    DSHIM_PID=$(pgrep -f "containerd-shim-runc-v2 .*-id $DCID" | head -1 || true)
    DSHIM_RSS=$([ -n "$DSHIM_PID" ] && rss_kb "$DSHIM_PID" || echo 0)
    "$DOCKER_CLI" -H "$DSOCK" rm -f bench-sleep >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- parallel start
: >"$T/parallel.md"
if [ "$PARALLEL" -gt 0 ]; then
    log "starting $PARALLEL containers in parallel (berth)"
    "$REPO/bench/parallel.sh" "$PARALLEL" "$IMAGE" berth "$BERTH" "$BSOCK" "$BERTHD_PID" \
        "berth-runtime shim --config $T/" >>"$T/parallel.md"
    if [ "$DOCKER_OK" = 1 ]; then
        log "starting $PARALLEL containers in parallel (docker)"
        CTRD_PID=$(pgrep -P "$DOCKERD_PID" -x containerd | head -1 || true)
        "$REPO/bench/parallel.sh" "$PARALLEL" "$IMAGE" docker "$DOCKER_CLI" "$DSOCK" \
            "$DOCKERD_PID${CTRD_PID:+,$CTRD_PID}" "containerd-shim-runc-v2 -namespace moby" >>"$T/parallel.md"
    fi
fi

# ---------------------------------------------------------------- report
B_MEAN=$(mean_of "berth run")
D_MEAN=$(mean_of "docker run (dockerd)")
DB_MEAN=$(mean_of "docker run (berthd)")
R_MEAN=$(mean_of "runc run")
BR_MEAN=$(mean_of "berth-runtime run")
{
    echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, kernel $(uname -r), load before run: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "hyperfine --warmup $WARMUP --runs $RUNS; $("$RUNC" --version | head -1); dockerd $("$DOCKERD" --version 2>/dev/null | awk '{print $3}' | tr -d ,); docker CLI $("${DOCKER_CLI:-true}" --version 2>/dev/null | awk '{print $3}' | tr -d ,)"
    echo
    echo "| command | mean ± σ (ms) | min (ms) | max (ms) |"
    echo "|---|---:|---:|---:|"
    for i in "${!NAMES[@]}"; do
        jq -r --arg n "${NAMES[$i]}" '.results[0] | "| \($n) | \(.mean*1000*10|round/10) ± \(.stddev*1000*10|round/10) | \(.min*1000*10|round/10) | \(.max*1000*10|round/10) |"' "$RES/$i.json"
    done
    echo
    echo "| ratio | value |"
    echo "|---|---:|"
    echo "| docker run (dockerd) / berth run | $(ratio "$D_MEAN" "$B_MEAN") |"
    echo "| docker CLI→berthd / berth run | $(ratio "$DB_MEAN" "$B_MEAN") |"
    echo "| runc run / berth run | $(ratio "$R_MEAN" "$B_MEAN") |"
    echo "| berth-runtime run / runc run | $(ratio "$BR_MEAN" "$R_MEAN") |"
    echo
    echo "| memory (VmRSS) | value |"
    echo "|---|---:|"
    echo "| berthd, idle after load | $(mib "$BERTHD_RSS") |"
    echo "| berthd, one container running | $(mib "$BERTHD_RSS_BUSY") |"
    if [ "$DOCKER_OK" = 1 ]; then
        echo "| dockerd, idle after load | $(mib "$DOCKERD_RSS") |"
        echo "| its containerd | $(mib "$CTRD_RSS") |"
        echo "| dockerd + containerd | $(mib $((DOCKERD_RSS + CTRD_RSS))) |"
    else
        echo "| dockerd | skipped (no dockerd) |"
    fi
    echo "| berth-runtime shim (\`sleep 30\` container) | $(mib "$SHIM_RSS") |"
    [ "$DOCKER_OK" = 1 ] && echo "| containerd-shim-runc-v2 (\`sleep 30\` container) | $(mib "$DSHIM_RSS") |"
    if [ -s "$T/parallel.md" ]; then
        echo
        echo "| parallel start / memory | value |"
        echo "|---|---:|"
        cat "$T/parallel.md"
    fi
} >"$RES/summary.md"
[ "$DOCKER_OK" = 1 ] || echo -e "\nDocker columns skipped: $DOCKERD not available." >>"$RES/summary.md"
{
    echo "berthd pid=$BERTHD_PID shim pid=${SHIM_PID:-none} ($SHIM_CMD)"
    echo "dockerd pid=${DOCKERD_PID:-none} containerd pid=${CTRD_PID:-none} docker shim pid=${DSHIM_PID:-none}"
} >"$RES/pids.txt"

echo
cat "$RES/summary.md"

if [ -n "$DOCS" ]; then
    python3 - "$DOCS" "$RES/summary.md" <<'PY'
import sys
doc, summ = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(doc).read()
b, e = "<!-- bench:begin -->", "<!-- bench:end -->"
i, j = text.index(b) + len(b), text.index(e)
open(doc, "w").write(text[:i] + "\n" + summ + "\n" + text[j:])
PY
    log "wrote results into $DOCS"
fi
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$RES"/* "$OUT"/
    cp "$T/berthd.log" "$OUT/" 2>/dev/null || true
    cp "$T/dockerd.log" "$OUT/" 2>/dev/null || true
    log "results copied to $OUT"
fi
