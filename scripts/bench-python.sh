#!/usr/bin/env bash
# The Python benchmark (python/benches/bench_invoke.py): builds famfs-run, famfs-serve and the
# famfs_run extension in release mode and the guests, then prints a table of small invocations
# through the extension, subprocess famfs-run and famfs-serve, and of a Ray fan-out over 16
# shards against one process. FAMFS_BENCH_CALLS, FAMFS_BENCH_SHARD_ROWS and FAMFS_BENCH_DIR are
# passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .
cargo build --release -p famfs-runtime --bin famfs-run -p famfs-serve --bin famfs-serve
(cd guests && cargo build --release --target wasm32-wasip1 -p sum-handler -p arrow-agg \
    --target-dir "$CARGO_TARGET_DIR/guests-target")
source scripts/python-env.sh
ensure_python_env --release
export FAMFS_RUN_GUESTS="$CARGO_TARGET_DIR/guests-target/wasm32-wasip1/release"
export FAMFS_RUN_BIN="$CARGO_TARGET_DIR/release"
export RAY_USAGE_STATS_ENABLED=0
python python/benches/bench_invoke.py
