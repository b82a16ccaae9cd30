# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/test.sh (and so by .ci/run): the one place that makes
# sure the Rust toolchain pinned in rust-toolchain.toml, with its components and wasm targets,
# is installed, and that builds share one target directory outside the clone.
#
# Idempotent and quiet when everything is there. It does not rely on rustup installing a missing
# toolchain on first use: machines may set RUSTUP_AUTO_INSTALL=0, and a toolchain that exists
# without its wasm targets is never repaired by that anyway.

# ensure_toolchain ROOT: installs what ROOT/rust-toolchain.toml asks for and is missing.
ensure_toolchain() {
    local file="$1/rust-toolchain.toml"
    local channel targets components
    channel=$(sed -n 's/^channel *= *"\([^"]*\)".*/\1/p' "$file")
    targets=$(sed -n 's/^targets *= *\[\(.*\)\].*/\1/p' "$file" | tr -d '" ' | tr ',' ' ')
    components=$(sed -n 's/^components *= *\[\(.*\)\].*/\1/p' "$file" | tr -d '" ' | tr ',' ' ')
    if [ -z "$channel" ]; then
        echo "ensure-toolchain: no channel in $file" >&2
        return 1
    fi
    if ! command -v rustup >/dev/null 2>&1; then
        echo "ensure-toolchain: rustup is required: install it from https://rustup.rs, then run this again" >&2
        return 1
    fi
    local t c
    if ! rustup toolchain list | grep -q "^$channel-"; then
        echo "ensure-toolchain: installing Rust $channel (rust-toolchain.toml)"
        local args=(toolchain install "$channel" --profile minimal)
        for c in $components; do args+=(--component "$c"); done
        for t in $targets; do args+=(--target "$t"); done
        rustup "${args[@]}" || return 1
    fi
    local installed missing=()
    installed=$(rustup target list --installed --toolchain "$channel") || return 1
    for t in $targets; do
        grep -qx "$t" <<<"$installed" || missing+=("$t")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "ensure-toolchain: adding the targets ${missing[*]} to Rust $channel"
        rustup target add --toolchain "$channel" "${missing[@]}" || return 1
    fi
    missing=()
    installed=$(rustup component list --installed --toolchain "$channel") || return 1
    for c in $components; do
        grep -q "^$c\(-\|$\)" <<<"$installed" || missing+=("$c")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "ensure-toolchain: adding the components ${missing[*]} to Rust $channel"
        rustup component add --toolchain "$channel" "${missing[@]}" || return 1
    fi
}

# One target directory outside the clone, shared by the demo, the tests and every clone
# (the demo's release build of wasmtime takes about 6 minutes cold on two cores, the tests' build
# of everything about 25). CARGO_TARGET_DIR overrides it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/famfs-run/target}"
