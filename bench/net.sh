#!/usr/bin/env bash
# Network benchmarks (issue 6, NET-17..NET-19):
#  1. TCP throughput of one HTTP download (busybox httpd -> curl) over the
#     host's loopback, through a berth published port (kernel DNAT), and
#     through a Docker published port (dockerd 20.10 with iptables and its
#     userland proxy, the default: docker-proxy for 127.0.0.1, DNAT
#     otherwise), all in one run, from 127.0.0.1 and from the bridge gateway
#     address.
#  2. Time to connect 50 running containers to one user network
#     (`docker network connect`, the docker CLI against both engines).
#
#   bench/net.sh [--no-build] [--docs FILE] [--runs N]
#
# Same set-up and cleanup as bench/run.sh (bench/lib.sh): root, a private
# berthd and dockerd. dockerd is restarted here with --iptables=true so that
# its published ports work; its iptables chains are removed afterwards and
# the FORWARD policy restored. NET_SIZE_MB (default 1024) sets the size of
# the downloaded file, NET_TRIES (default 5) the rounds over the five paths
# (best and median are reported, with the CPU time per GiB), NET_CONNECT=0
# skips part 2. Each download first waits up to NET_IDLE_WAIT (30) seconds
# for a second with the machine 85% idle.
# BERTHD_EXTRA_ARGS=--veth-rps=false measures berthd without RPS on its
# veths (docs/networking.md, "Throughput"). Traffic stays on loopback and
# our own bridges.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${NET_SIZE_MB:-1024}
TRIES=${NET_TRIES:-5}
CONNECT=${NET_CONNECT:-1}
IDLE_WAIT=${NET_IDLE_WAIT:-30}
NCONN=50
DBIP=10.213.76.1/24
FWD_BEFORE=$(iptables -S FORWARD 2>/dev/null | awk '/^-P FORWARD/ {print $3}')
FWD_BEFORE=${FWD_BEFORE:-ACCEPT}
HOST_HTTPD_PID=""

net_cleanup() {
    set +e
    [ -n "$HOST_HTTPD_PID" ] && kill "$HOST_HTTPD_PID" 2>/dev/null
    for eng in "$BSOCK" "$DSOCK"; do
        "$DOCKER_CLI" -H "$eng" ps -aq 2>/dev/null | xargs -r "$DOCKER_CLI" -H "$eng" rm -f >/dev/null 2>&1
        "$DOCKER_CLI" -H "$eng" network prune -f >/dev/null 2>&1
    done
    stop_pid "$DOCKERD_PID" dockerd
    DOCKERD_PID=""
    stop_pid "$BERTHD_PID" berthd
    BERTHD_PID=""
    # dockerd's iptables chains and rules, and the FORWARD policy.
    for t in filter nat; do
        iptables-save -t "$t" 2>/dev/null | grep -vE 'DOCKER|docker0' | iptables-restore -T "$t" 2>/dev/null
    done
    iptables -P FORWARD "$FWD_BEFORE" 2>/dev/null
}
trap 'net_cleanup; cleanup' EXIT

[ "$DOCKER_OK" = 1 ] || die "the network benchmark needs dockerd and the docker CLI"

log "restarting dockerd with iptables and the userland proxy"
stop_pid "$DOCKERD_PID" dockerd
"$DOCKERD" --data-root "$T/dockerd-data" --exec-root "$T/dockerd-exec" \
    -H "$DSOCK" --pidfile "$T/dockerd.pid" --config-file "$T/dockerd.json" \
    --bip "$DBIP" --iptables=true --ip-forward=true \
    --cgroup-parent "/$DOCKER_CGROUP" --storage-driver overlay2 >"$T/dockerd2.log" 2>&1 &
DOCKERD_PID=$!
wait_sock "$T/dockerd.sock" "$DOCKERD_PID" dockerd || die "dockerd did not restart"
for _ in $(seq 1 100); do "$DOCKER_CLI" -H "$DSOCK" version >/dev/null 2>&1 && break; sleep 0.1; done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }

# One download: "MB/s CPU-s/GiB". The CPU cost is the whole machine's busy
# time (/proc/stat: not idle, not iowait) during the transfer per GiB moved:
# it does not depend on how the two ends were scheduled, but counts any
# other load too (run on an otherwise idle machine).
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# Percent of the machine idle over the last second.
idle_pct() {
    local a b
    a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%d", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 100 }'
}
one() { # url
    local b0 b1 out i
    # On a shared machine, wait (up to NET_IDLE_WAIT s) for a quiet second.
    for i in $(seq 1 "$IDLE_WAIT"); do
        [ "$(idle_pct)" -ge 85 ] && break
    done
    b0=$(busy_jiffies)
    out=$(curl -s -o /dev/null -m 120 -w '%{speed_download} %{size_download}' "$1" || echo "0 0")
    b1=$(busy_jiffies)
    awk -v o="$out" -v j=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(o, f, " "); printf "%.0f %.3f\n", f[1] / 1e6, (f[2] > 0) ? j / hz / (f[2] / 1073741824) : 0 }'
}

SCRIPT="mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=$SIZE_MB 2>/dev/null && exec httpd -f -p 80 -h /www"
log "host loopback: busybox httpd on 127.0.0.1"
mkdir -p "$T/www"
dd if=/dev/zero of="$T/www/big" bs=1M count="$SIZE_MB" 2>/dev/null
HP=$(free_port)
busybox httpd -f -p "127.0.0.1:$HP" -h "$T/www" &
HOST_HTTPD_PID=$!
sleep 0.5

log "berth published port"
BP=$(free_port)
"$BERTH" -H "$BSOCK" run -d --name netb -p "$BP:80" "$IMAGE" sh -c "$SCRIPT" >/dev/null
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$BP/" && break; sleep 0.2; done
BGW=$("$BERTH" -H "$BSOCK" inspect -f '{{.NetworkSettings.Gateway}}' netb)

log "docker published port"
DP=$(free_port)
"$DOCKER_CLI" -H "$DSOCK" run -d --name netd -p "$DP:80" "$IMAGE" sh -c "$SCRIPT" >/dev/null
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$DP/" && break; sleep 0.2; done
DGW=$("$DOCKER_CLI" -H "$DSOCK" inspect -f '{{.NetworkSettings.Gateway}}' netd)

# The five paths take turns, $TRIES rounds, so that a change of load on the
# machine (two cores, shared) hits all of them alike.
PATHS=(loop berth_lo berth_gw docker_lo docker_gw)
declare -A URL=([loop]="http://127.0.0.1:$HP/big" [berth_lo]="http://127.0.0.1:$BP/big"
    [berth_gw]="http://$BGW:$BP/big" [docker_lo]="http://127.0.0.1:$DP/big"
    [docker_gw]="http://$DGW:$DP/big")
declare -A MBS COST
log "throughput: $TRIES rounds of ${SIZE_MB} MiB over ${#PATHS[@]} paths"
for _ in $(seq 1 "$TRIES"); do
    for p in "${PATHS[@]}"; do
        read -r m c < <(one "${URL[$p]}")
        MBS[$p]="${MBS[$p]:-} $m"
        COST[$p]="${COST[$p]:-} $c"
    done
done
best() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -1; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
row() { # label path
    local p=$2
    printf '| %s | %s MB/s | %s | %s MB/s | %s | %.2f |\n' "$1" "$(best "${MBS[$p]}")" \
        "$(pct "$(best "${MBS[$p]}")" "$(best "${MBS[loop]}")")" "$(median "${MBS[$p]}")" \
        "$(pct "$(median "${MBS[$p]}")" "$(median "${MBS[loop]}")")" "$(median "${COST[$p]}")"
}

connect_time() { # sock engine
    local sock=$1 i start end
    log "connecting $NCONN containers to one network ($sock)"
    "$DOCKER_CLI" -H "$sock" network create benchnet >/dev/null
    for i in $(seq 1 "$NCONN"); do
        "$DOCKER_CLI" -H "$sock" run -d --name "c$i" "$IMAGE" sleep 100000 >/dev/null
    done
    start=$(date +%s.%N)
    for i in $(seq 1 "$NCONN"); do
        "$DOCKER_CLI" -H "$sock" network connect benchnet "c$i"
    done
    end=$(date +%s.%N)
    # Check: the last one resolves the first by name on the new network.
    "$DOCKER_CLI" -H "$sock" exec "c$NCONN" ping -c1 -W2 c1 >/dev/null || log "warning: c$NCONN cannot resolve c1"
    for i in $(seq 1 "$NCONN"); do echo "c$i"; done | xargs "$DOCKER_CLI" -H "$sock" rm -f >/dev/null
    "$DOCKER_CLI" -H "$sock" network rm benchnet >/dev/null
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}
if [ "$CONNECT" = 1 ]; then
    BCONN=$(connect_time "$BSOCK")
    DCONN=$(connect_time "$DSOCK")
fi

table=$(cat <<EOF
| path (${SIZE_MB} MiB HTTP download, $TRIES rounds${BERTHD_EXTRA_ARGS:+, berthd $BERTHD_EXTRA_ARGS}) | best | vs loopback | median | vs loopback | CPU s/GiB (median) |
|---|---|---|---|---|---|
$(row "host loopback (busybox httpd on the host)" loop)
$(row "berth published port via 127.0.0.1 (DNAT)" berth_lo)
$(row "berth published port via bridge gateway $BGW (DNAT)" berth_gw)
$(row "Docker published port via 127.0.0.1 (docker-proxy)" docker_lo)
$(row "Docker published port via bridge gateway $DGW (DNAT)" docker_gw)

EOF
)
if [ "$CONNECT" = 1 ]; then
    table+=$'\n'$(cat <<EOF

| $NCONN x \`docker network connect\` (running containers, docker CLI) | total | per container |
|---|---|---|
| berthd | ${BCONN} s | $(awk -v t="$BCONN" -v n="$NCONN" 'BEGIN { printf "%.1f ms", 1000 * t / n }') |
| dockerd 20.10 | ${DCONN} s | $(awk -v t="$DCONN" -v n="$NCONN" 'BEGIN { printf "%.1f ms", 1000 * t / n }') |
EOF
)
fi
echo "$table"
if [ -n "$DOCS" ]; then
    printf '\n%s\n' "$table" >>"$DOCS"
    log "appended to $DOCS"
fi
