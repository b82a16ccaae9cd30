#!/usr/bin/env bash
# The test command (README, CI's .ci/run): makes sure the pinned toolchain and wasm targets are
# installed, installs what the tests need besides Rust, then runs them all: `cargo test`, then
# the Python package's tests (pytest, a local Ray cluster among them). Arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .
bash scripts/test-deps.sh
cargo test --workspace "$@"
bash scripts/python-tests.sh
