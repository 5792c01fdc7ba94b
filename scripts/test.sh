#!/usr/bin/env bash
# The full test suite: unit tests and end-to-end tests with real
# containers (needs root). Builds every binary first: the e2e tests drive
# berth, berthd and berth-runtime as programs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=2
