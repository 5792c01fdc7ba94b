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

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
for p in $(pgrep -f 'berth-runtime shim --config' || true); do
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
    # berthd's shim launcher counts as daemon memory.
    LAUNCHER_PID=$(pgrep -P "$BERTHD_PID" -f 'berth-runtime shim-launcher' | head -1 || true)
    "$REPO/bench/parallel.sh" "$PARALLEL" "$IMAGE" berth "$BERTH" "$BSOCK" "$BERTHD_PID${LAUNCHER_PID:+,$LAUNCHER_PID}" \
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
