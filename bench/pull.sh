#!/usr/bin/env bash
# Pull from a local registry (Debian's docker-registry on 127.0.0.1): an
# image of 10 layers, ~500 MB, pulled by `berth pull` (berthd), `docker pull`
# (private dockerd 20.10) and `skopeo copy` to a local directory, in one run;
# then each daemon's peak memory (VmHWM) after those pulls and one of a
# single 200 MB layer (memory must not grow with layer size).
#
#   bench/pull.sh [--runs N] [--out DIR] [--no-build] [--docs FILE]
#
# Same requirements, isolation and cleanup as bench/run.sh (whose set-up this
# script shares), plus docker-registry and skopeo. --runs defaults to 3 here.
set -euo pipefail

PULL_RUNS=3
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) PULL_RUNS=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v skopeo >/dev/null || die "skopeo not found (apt-get install skopeo)"

# ---------------------------------------------------------------- images
log "making the test images (10 x 50 MB layers; 1 x 200 MB layer)"
python3 - "$T/big10.tar" "$T/big1.tar" <<'PY'
import hashlib, io, json, os, sys, tarfile

def layer(i, size):
    # Half random, half text: gzip gets ~1.6x, like real images.
    rnd = os.urandom(size // 2)
    txt = (b"berth pull benchmark line %d\n" % i) * (size // 2 // 30)
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in ((f"layer{i}/random.bin", rnd), (f"layer{i}/text.txt", txt)):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

def archive(path, tag, sizes):
    layers = [layer(i, s) for i, s in enumerate(sizes)]
    diffs = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                      "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    cid = hashlib.sha256(cfg).hexdigest()
    with tarfile.open(path, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
        for i, l in enumerate(layers):
            add(f"l{i}/layer.tar", l)
        add(cid + ".json", cfg)
        add("manifest.json", json.dumps([{"Config": cid + ".json", "RepoTags": [tag],
                                           "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode())

archive(sys.argv[1], "bench/big10:1", [50 << 20] * 10)
archive(sys.argv[2], "bench/big1:1", [200 << 20])
PY

# ---------------------------------------------------------------- registry
PORT=$("$REPO/scripts/test-registry.sh" start "$T/registry")
REG=127.0.0.1:$PORT
log "registry on $REG"
R10=$REG/bench/big10:1
R1=$REG/bench/big1:1
for a in big10 big1; do
    "$BERTH" -H "$BSOCK" load -q -i "$T/$a.tar" >/dev/null
    "$BERTH" -H "$BSOCK" tag "bench/$a:1" "$REG/bench/$a:1"
    "$BERTH" -H "$BSOCK" push "$REG/bench/$a:1" >/dev/null
    "$BERTH" -H "$BSOCK" rmi "bench/$a:1" "$REG/bench/$a:1" >/dev/null
done
rm -f "$T/big10.tar" "$T/big1.tar"
size=$(du -sb "$T/registry/storage" | cut -f1)
log "pushed; registry holds $((size / 1000000)) MB"

B_IDLE=$(rss_kb "$BERTHD_PID")
D_IDLE=0
if [ "$DOCKER_OK" = 1 ]; then
    CTRD0=$(pgrep -f -- "containerd.*$T/dockerd-exec" | head -1 || true)
    D_IDLE=$(( $(rss_kb "$DOCKERD_PID") + $( [ -n "$CTRD0" ] && rss_kb "$CTRD0" || echo 0) ))
fi

# ---------------------------------------------------------------- pull time
cmds=(-n "berth pull" --prepare "$BERTH -H $BSOCK rmi -f $R10 >/dev/null 2>&1 || true"
      "$BERTH -H $BSOCK pull -q $R10")
if [ "$DOCKER_OK" = 1 ]; then
    cmds+=(-n "docker pull (dockerd 20.10)" --prepare "$DOCKER_CLI -H $DSOCK rmi -f $R10 >/dev/null 2>&1 || true"
           "$DOCKER_CLI -H $DSOCK pull -q $R10")
fi
cmds+=(-n "skopeo copy to dir" --prepare "rm -rf $T/skopeo-dir"
       "skopeo --insecure-policy copy -q --src-tls-verify=false docker://$R10 dir:$T/skopeo-dir")
log "hyperfine: $PULL_RUNS runs each"
hyperfine --runs "$PULL_RUNS" --export-json "$T/pull.json" "${cmds[@]}" >&2
# Every berth run really downloaded: the image is there and complete.
"$BERTH" -H "$BSOCK" inspect -f '{{len .RootFS.Layers}} layers' "$R10" >&2

# ---------------------------------------------------------------- memory
# Lifetime peak RSS (VmHWM) of each daemon after the pulls above plus one
# pull of a single 200 MB layer: bounded memory means it stays near the idle
# size whatever the layer size. Idle sizes were read before any pull.
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
"$BERTH" -H "$BSOCK" pull -q "$R1" >/dev/null
b_peak=$(hwm_kb "$BERTHD_PID")
row_b="| berthd (also loaded and pushed both images) | $(mib "$B_IDLE") | $(mib "$b_peak") |"
row_d=""
if [ "$DOCKER_OK" = 1 ]; then
    "$DOCKER_CLI" -H "$DSOCK" pull -q "$R1" >/dev/null
    CTRD_PID=$(pgrep -f -- "containerd.*$T/dockerd-exec" | head -1 || true)
    d_peak=$(( $(hwm_kb "$DOCKERD_PID") + $( [ -n "$CTRD_PID" ] && hwm_kb "$CTRD_PID" || echo 0) ))
    row_d="| dockerd + containerd | $(mib "$D_IDLE") | $(mib "$d_peak") |"
fi

table=$(jq -r '
  (.results | map({(.command): .mean}) | add) as $m
  | "| command | mean | min | max |", "|---|---|---|---|",
    (.results[] | "| \(.command) | \(.mean*1000|round) ms | \(.min*1000|round) ms | \(.max*1000|round) ms |"),
    "",
    (if $m["docker pull (dockerd 20.10)"] then
       "docker / berth: \($m["docker pull (dockerd 20.10)"] / $m["berth pull"] | .*100|round/100)x" else empty end),
    "skopeo / berth: \($m["skopeo copy to dir"] / $m["berth pull"] | .*100|round/100)x"' "$T/pull.json")
mem="| daemon | RSS before any pull | peak RSS (VmHWM) after pulling 10 x 50 MB and 1 x 200 MB layers |
|---|---|---|
$row_b
$row_d"
echo "Registry: $((size / 1000000)) MB compressed, 10 layers (big10) / 1 layer (big1)."
echo
echo "$table"
echo
echo "$mem"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$T/pull.json" "$OUT/"
    { echo "$table"; echo; echo "$mem"; } >"$OUT/pull.md"
fi
if [ -n "$DOCS" ]; then
    { echo; echo "$table"; echo; echo "$mem"; } >>"$DOCS"
fi
