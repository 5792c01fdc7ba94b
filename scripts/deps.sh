#!/usr/bin/env bash
# Install the Debian packages berth needs to build, run and test.
# Idempotent: does nothing when everything is present.
set -euo pipefail
PKGS=(libseccomp-dev pkg-config busybox-static runc iproute2 nftables python3 python3-yaml python3-jsonschema curl hyperfine docker.io tini docker-registry apache2-utils skopeo openssl e2fsprogs)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "deps: cargo (rustup toolchain) is required" >&2; exit 1; }
