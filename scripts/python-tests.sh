#!/usr/bin/env bash
# The Python half of the test command (scripts/test.sh runs it after `cargo test`, which built
# the guests and tools the tests use): builds the famfs_run extension into a virtual environment
# and runs pytest on python/tests, the Ray cluster test included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .
# The tests compare with the command-line tools (`cargo test` builds them only into deps/);
# famfs-vm boots the test machine of the device-dax test.
cargo build --quiet -p famfs-runtime --bin famfs-run -p famfs --bin famfsctl -p famfs-run-tests --bin famfs-vm
source scripts/python-env.sh
ensure_python_env
export FAMFS_RUN_GUESTS="$CARGO_TARGET_DIR/guests-target/wasm32-wasip1/release"
export FAMFS_RUN_SQL_GUESTS="$CARGO_TARGET_DIR/sql-target/wasm32-wasip1/release"
export FAMFS_RUN_BIN="$CARGO_TARGET_DIR/debug"
# Ray would otherwise report usage statistics and look for a dashboard.
export RAY_USAGE_STATS_ENABLED=0
python -m pytest python/tests -q -p no:cacheprovider "$@"
