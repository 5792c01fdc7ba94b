#!/usr/bin/env bash
# Compatibility harness entry point: berthd vs dockerd, see tests/compat/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/compat/test_compare.py -q 2>&1 | tail -1
exec python3 tests/compat/compat.py "$@"
