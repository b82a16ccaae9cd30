#!/usr/bin/env bash
# The Python half of the test command (scripts/test.sh runs it after `cargo test`, which built
# the guests and tools the tests use): builds the famfs_run extension into a virtual environment
# and runs pytest on python/tests, the Ray and Dask cluster tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .
# The extension, and the command-line tools the tests compare with (famfs-run, famfsctl;
# famfs-vm boots the test machine of the device-dax test), in one build with `cargo test
# --workspace`'s features: after it, this compiles only PyO3, arrow-rs and the extension.
source scripts/python-env.sh
ensure_python_env
export FAMFS_RUN_GUESTS="$CARGO_TARGET_DIR/guests-target/wasm32-wasip1/release"
export FAMFS_RUN_SQL_GUESTS="$CARGO_TARGET_DIR/sql-target/wasm32-wasip1/release"
export FAMFS_RUN_BIN="$CARGO_TARGET_DIR/debug"
# Ray would otherwise report usage statistics and look for a dashboard.
export RAY_USAGE_STATS_ENABLED=0
python -m pytest python/tests -q -p no:cacheprovider "$@"
