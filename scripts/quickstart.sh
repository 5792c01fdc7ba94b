#!/usr/bin/env bash
# Fresh machine to running containers, offline (no registry needed):
# install packages, build, make the busybox base image, let `berth` start
# its daemon, load the image and run containers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root" >&2; exit 1; }
scripts/deps.sh
cargo build --workspace
BIN=$PWD/target/debug
IMAGES=${IMAGES:-$PWD/target/images}
scripts/mkimage.sh "$IMAGES" >/dev/null
# With no daemon on /run/berth/berth.sock, `berth` (as root) starts berthd.
"$BIN/berth" load -i "$IMAGES/busybox.tar"
"$BIN/berth" images
"$BIN/berth" run --rm berth-test/busybox echo "hello from a berth container"
"$BIN/berth" run --rm -m 32m --pids-limit 10 berth-test/busybox sh -c 'echo "pid $$ on $(hostname)"; ls /sys/class/net'
"$BIN/berth" run -d --name quickstart-demo berth-test/busybox sh -c 'echo started; sleep 3600' >/dev/null
"$BIN/berth" ps
for _ in $(seq 50); do "$BIN/berth" logs quickstart-demo | grep -q started && break; sleep 0.1; done
"$BIN/berth" logs quickstart-demo
"$BIN/berth" rm -f quickstart-demo >/dev/null
echo "quickstart: ok (daemon on unix:///run/berth/berth.sock, log /run/berth/berthd.log)"
