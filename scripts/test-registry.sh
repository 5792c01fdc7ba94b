#!/usr/bin/env bash
# A throwaway registry (Debian's docker-registry, distribution 2.8) on
# 127.0.0.1:<free port> with its own config and storage under DIR.
#
#   scripts/test-registry.sh start DIR [USER:PASSWORD]   # prints the port; htpasswd auth if given
#   scripts/test-registry.sh stop DIR                    # kills it and removes DIR
#
# 127.0.0.0/8 is an insecure (plain HTTP) registry for berthd and dockerd.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,8p' "$0"; exit 2; }

case "$cmd" in
start)
    bin=$(command -v docker-registry || command -v registry || true)
    [ -n "$bin" ] || { echo "docker-registry is not installed (apt-get install docker-registry)" >&2; exit 1; }
    mkdir -p "$dir/storage"
    auth=""
    if [ -n "${3:-}" ]; then
        user=${3%%:*}; pass=${3#*:}
        htpasswd -Bbn "$user" "$pass" > "$dir/htpasswd"
        auth=$'auth:\n  htpasswd:\n    realm: berth-test\n    path: '"$dir/htpasswd"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
YML
    setsid "$bin" serve "$dir/config.yml" > "$dir/registry.log" 2>&1 < /dev/null &
    echo $! > "$dir/registry.pid"
    for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
            echo "$port" > "$dir/port"
            echo "$port"
            exit 0
        fi
        sleep 0.1
    done
    echo "registry did not start:" >&2; cat "$dir/registry.log" >&2
    kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    exit 1
    ;;
stop)
    if [ -f "$dir/registry.pid" ]; then
        pid=$(cat "$dir/registry.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
