#!/usr/bin/env bash
# Crash-consistency stress: famfs/tests/crash.rs with many more SIGKILLs than `cargo test` runs
# by default. Usage: scripts/crash-stress.sh [ITERATIONS]   (default 1000)
# FAMFS_CRASH_SEED=N replays the kill delays of an earlier run (the test prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-1000}
if ! [[ $iterations =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [ITERATIONS]  (a positive number, default 1000)" >&2
    exit 2
fi
FAMFS_CRASH_ITERATIONS=$iterations exec cargo test -p famfs --release --test crash -- --nocapture
