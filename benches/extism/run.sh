#!/usr/bin/env bash
# famfs-run zero-copy vs Extism copy-in (a table). Builds famfs-run and famfsctl (release, main
# workspace), sum-handler (wasm32-wasip2), the Extism plugin (wasm32-unknown-unknown) and this
# benchmark (its own workspace and target dir: Extism brings wasmtime 37), then runs it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/famfs-run/target}"
ext_target="${EXTISM_TARGET_DIR:-$HOME/.cache/famfs-run/extism-target}"
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -q -p famfs-runtime -p famfs)
(cd "$root/guests" && cargo build --release -q --target wasm32-wasip2 -p sum-handler --target-dir "$target/guests-target")
(cd "$here" && cargo build --release -q --target wasm32-unknown-unknown -p extism-sum --target-dir "$ext_target")
(cd "$here" && cargo build --release -q --target-dir "$ext_target")
"$ext_target/release/extism-bench" "$target/release/famfs-run" "$target/release/famfsctl" \
    "$target/guests-target/wasm32-wasip2/release/sum_handler.wasm" \
    "$ext_target/wasm32-unknown-unknown/release/extism_sum.wasm"
