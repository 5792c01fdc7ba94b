#!/usr/bin/env bash
# `exec` latency: `berth exec CTR true` vs `docker exec CTR true` against a
# private dockerd 20.10 (and the docker CLI against berthd).
#
#   bench/exec.sh [--runs N] [--warmup N] [--out DIR] [--no-build] [--docs FILE] [--parallel N]
#
# Same requirements, isolation and cleanup as bench/run.sh (whose set-up this
# script shares): root, hyperfine, jq, python3, busybox-static; Docker
# columns need /usr/sbin/dockerd and a docker CLI. Prints a table with the
# mean latency of each and the Docker/berth ratio.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- exec latency
log "starting the exec targets"
"$BERTH" -H "$BSOCK" run -d --name ex "$IMAGE" sleep 100000 >/dev/null
"$BERTH" -H "$BSOCK" exec ex true || die "berth exec smoke test failed"
cmds=(-n "berth exec (berthd)" "$BERTH -H $BSOCK exec ex true")
if [ -n "$DOCKER_CLI" ]; then
    cmds+=(-n "docker CLI exec (berthd)" "$DOCKER_CLI -H $BSOCK exec ex true")
fi
if [ "$DOCKER_OK" = 1 ]; then
    "$DOCKER_CLI" -H "$DSOCK" run -d --name ex "$IMAGE" sleep 100000 >/dev/null
    "$DOCKER_CLI" -H "$DSOCK" exec ex true || die "docker exec smoke test failed"
    cmds+=(-n "docker exec (dockerd)" "$DOCKER_CLI -H $DSOCK exec ex true")
fi
log "hyperfine: $RUNS runs, $WARMUP warm-up"
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --export-json "$T/exec.json" "${cmds[@]}" >&2
# Ratios of means and of medians (the median resists the outliers that
# other load on a 2-core machine puts into a mean).
table=$(jq -r '
  (.results | map({(.command): .mean}) | add) as $m
  | (.results | map({(.command): .median}) | add) as $md
  | "| command | mean | median | min | max |", "|---|---|---|---|---|",
    (.results[] | "| \(.command) | \(.mean*1000|.*100|round/100) ms | \(.median*1000|.*100|round/100) ms | \(.min*1000|.*100|round/100) ms | \(.max*1000|.*100|round/100) ms |"),
    (if $m["docker exec (dockerd)"] then
       "", "Docker / berth (means): \($m["docker exec (dockerd)"] / $m["berth exec (berthd)"] | .*10|round/10)x (berth CLI); \($m["docker exec (dockerd)"] / $m["docker CLI exec (berthd)"] | .*10|round/10)x (same docker CLI)",
       "Docker / berth (medians): \($md["docker exec (dockerd)"] / $md["berth exec (berthd)"] | .*10|round/10)x (berth CLI); \($md["docker exec (dockerd)"] / $md["docker CLI exec (berthd)"] | .*10|round/10)x (same docker CLI)"
     else empty end)' "$T/exec.json")
echo "$table"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$T/exec.json" "$OUT/exec.json"
    echo "$table" >"$OUT/exec.md"
fi
if [ -n "$DOCS" ]; then
    python3 - "$DOCS" "$table" <<'PY'
import sys
path, table = sys.argv[1], sys.argv[2]
s = open(path).read()
b, e = "<!-- bench-exec:begin -->", "<!-- bench-exec:end -->"
if b in s and e in s:
    s = s[: s.index(b) + len(b)] + "\n" + table + "\n" + s[s.index(e):]
else:
    s += "\n" + b + "\n" + table + "\n" + e + "\n"
open(path, "w").write(s)
PY
fi
