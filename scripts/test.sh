#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need besides Rust, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --workspace "$@"
