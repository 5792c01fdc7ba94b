#!/usr/bin/env bash
# docker save / docker load of a ~450 MB image (4 layers, half random, half
# text) with berthd and a private dockerd 20.10, in one run; then berthd's
# peak memory (VmHWM), which must not grow with layer size (IMG-14/15).
#
#   bench/save-load.sh [--runs N] [--out DIR] [--no-build] [--docs FILE]
#
# Same requirements, isolation and cleanup as bench/run.sh (whose set-up
# this script shares). --runs defaults to 3 here. The first berth save of an
# image also decompresses every layer once to measure and verify it (later
# saves stream in one pass); it is timed separately.
set -euo pipefail

SL_RUNS=3
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) SL_RUNS=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "making the test image (4 layers, ~450 MB)"
python3 - "$T/big.tar" <<'PY'
import hashlib, io, json, os, sys, tarfile

def layer(i, size):
    rnd = os.urandom(size // 2)
    txt = (b"berth save/load benchmark line %d\n" % i) * (size // 2 // 34)
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in ((f"layer{i}/random.bin", rnd), (f"layer{i}/text.txt", txt)):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

layers = [layer(i, s) for i, s in enumerate([200 << 20, 150 << 20, 50 << 20, 30 << 20])]
diffs = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(sys.argv[1], "w") as t:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
    for i, l in enumerate(layers):
        add(f"l{i}/layer.tar", l)
    add(cid + ".json", cfg)
    add("manifest.json", json.dumps([{"Config": cid + ".json", "RepoTags": ["bench/big:1"],
                                       "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode())
PY
size=$(stat -c %s "$T/big.tar")
B_IDLE=$(rss_kb "$BERTHD_PID")
"$BERTH" -H "$BSOCK" load -q -i "$T/big.tar" >/dev/null
first_b=$( { /usr/bin/time -f %e "$BERTH" -H "$BSOCK" save -o "$T/b-first.tar" bench/big:1; } 2>&1 )
rm -f "$T/b-first.tar"
if [ "$DOCKER_OK" = 1 ]; then
    "$DOCKER_CLI" -H "$DSOCK" load -q -i "$T/big.tar" >/dev/null
fi

cmds=(-n "berth save" --prepare "rm -f $T/b.tar" "$BERTH -H $BSOCK save -o $T/b.tar bench/big:1")
if [ "$DOCKER_OK" = 1 ]; then
    cmds+=(-n "docker save (dockerd 20.10)" --prepare "rm -f $T/d.tar"
           "$DOCKER_CLI -H $DSOCK save -o $T/d.tar bench/big:1")
fi
cmds+=(-n "berth load" --prepare "$BERTH -H $BSOCK rmi -f bench/big:1 >/dev/null 2>&1 || true"
       "$BERTH -H $BSOCK load -q -i $T/big.tar")
if [ "$DOCKER_OK" = 1 ]; then
    cmds+=(-n "docker load (dockerd 20.10)" --prepare "$DOCKER_CLI -H $DSOCK rmi -f bench/big:1 >/dev/null 2>&1 || true"
           "$DOCKER_CLI -H $DSOCK load -q -i $T/big.tar")
fi
log "hyperfine: $SL_RUNS runs each"
hyperfine --runs "$SL_RUNS" --export-json "$T/save-load.json" "${cmds[@]}" >&2
"$BERTH" -H "$BSOCK" inspect -f '{{len .RootFS.Layers}} layers' bench/big:1 >&2

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
b_peak=$(hwm_kb "$BERTHD_PID")
table=$(jq -r '
  "| command | mean | min | max |", "|---|---|---|---|",
  (.results[] | "| \(.command) | \(.mean*1000|round) ms | \(.min*1000|round) ms | \(.max*1000|round) ms |")' \
  "$T/save-load.json")
echo "Image: $((size / 1000000)) MB archive, 4 layers. First berth save (measures and verifies every layer): ${first_b} s."
echo
echo "$table"
echo
echo "berthd RSS idle $(mib "$B_IDLE"), peak (VmHWM) after all loads and saves $(mib "$b_peak")."
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$T/save-load.json" "$OUT/"
fi
if [ -n "$DOCS" ]; then
    { echo; echo "First berth save: ${first_b} s."; echo; echo "$table"; echo
      echo "berthd RSS idle $(mib "$B_IDLE"), peak (VmHWM) $(mib "$b_peak")."; } >>"$DOCS"
fi
