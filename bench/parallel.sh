#!/usr/bin/env bash
# Parallel start and memory per running container (issue 4 benchmarks),
# called by bench/run.sh with its daemons up:
#   bench/parallel.sh N IMAGE NAME CLI SOCK DAEMON_PIDS SHIM_PATTERN
# Starts N `-d sleep` containers at once through CLI -H SOCK, prints one
# markdown table row per measure, then removes them. DAEMON_PIDS are the
# daemon processes (comma separated) whose RSS growth is charged to the
# containers; SHIM_PATTERN matches the per-container shim command lines.
set -euo pipefail
N=$1 IMAGE=$2 NAME=$3 CLI=$4 SOCK=$5 DPIDS=$6 SHIM_PAT=$7

rss_kb() { awk '/^VmRSS:/ {s+=$2} END {print s+0}' "$@" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ {s+=$2} END {print s+0}' "$@" 2>/dev/null || echo 0; }
daemons_rss() {
    local p files=()
    for p in ${DPIDS//,/ }; do files+=("/proc/$p/status"); done
    rss_kb "${files[@]}"
}

# Let the kernel finish tearing down what earlier benchmarks left (network
# namespaces, cgroups): wait until the machine is idle (under 5% busy over
# half a second), at most 30 s, so each engine starts on a quiet machine.
settle() {
    local i a b
    for i in $(seq 60); do
        a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
        sleep 0.5
        b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
        awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
            exit !((y[1] - x[1]) < 0.05 * (y[2] - x[2])) }' && return
    done
}
settle

before=$(daemons_rss)
t0=$(date +%s.%N)
seq 1 "$N" | xargs -P "$N" -I{} "$CLI" -H "$SOCK" run -d --name "par-$NAME-{}" "$IMAGE" sleep 600 >/dev/null
t1=$(date +%s.%N)
sleep 2
running=$("$CLI" -H "$SOCK" ps -q | wc -l)
after=$(daemons_rss)
shims=()
for p in $(pgrep -f -- "$SHIM_PAT" || true); do
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    case "$cmd" in *parallel.sh*) continue ;; esac
    shims+=("/proc/$p/smaps_rollup")
done
shim_pss=$([ ${#shims[@]} -gt 0 ] && pss_kb "${shims[@]}" || echo 0)
per=$(( (shim_pss + after - before) / (running > 0 ? running : 1) ))
awk -v n="$N" -v name="$NAME" -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v r="$running" \
    'BEGIN { printf "| %s: start %d containers in parallel (wall) | %.2f s (%d running) |\n", name, n, s, r }'
awk -v name="$NAME" -v k="$per" -v sh="${#shims[@]}" \
    'BEGIN { printf "| %s: memory per running container (shim PSS + daemon growth) | %.0f KiB (%d shims) |\n", name, k, sh }'
"$CLI" -H "$SOCK" ps -aq | xargs -r -n 20 -P 4 "$CLI" -H "$SOCK" rm -f >/dev/null 2>&1 || true
