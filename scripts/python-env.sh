# shellcheck shell=bash
# Sourced by scripts/python-tests.sh and scripts/bench-python.sh: a virtual environment outside
# the clone (FAMFS_RUN_VENV, default ~/.cache/famfs-run/venv) with python/requirements-test.txt
# installed, activated, and the famfs_run extension built into it, in the shared target
# directory.
#
# ensure_python_env [--release]:
#   --release    maturin develop --release (the benchmarks);
#   (none)       the extension built by `cargo build --workspace --lib --bins --tests`, the
#                feature resolution of the test command's `cargo test --workspace`, so that it
#                reuses that build's wasmtime instead of compiling another (building one
#                package alone resolves features differently: famfs-serve's hyper, for one,
#                changes smallvec's, and with it every crate of Cranelift), and installed
#                editable (python/ on the environment's path) as maturin develop does.

ensure_python_env() {
    local root venv stamp mode=${1:-}
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${FAMFS_RUN_VENV:-$HOME/.cache/famfs-run/venv}"
    # The package needs CPython 3.9+; the pinned test dependencies (pandas 3, numpy 2.4) 3.11+.
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "python-env: the tests need python3 3.11 or later (with venv and pip); found: $(python3 --version 2>&1)" >&2
        return 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        echo "python-env: creating the virtual environment $venv"
        python3 -m venv "$venv" || return 1
    fi
    # shellcheck disable=SC1091
    source "$venv/bin/activate" || return 1
    # Reinstall only when the pins changed.
    stamp="$venv/.famfs-run-requirements"
    if ! cmp -s "$root/python/requirements-test.txt" "$stamp"; then
        echo "python-env: installing python/requirements-test.txt (PyPI)"
        PIP_ROOT_USER_ACTION=ignore python -m pip install --quiet --disable-pip-version-check \
            -r "$root/python/requirements-test.txt" || return 1
        cp "$root/python/requirements-test.txt" "$stamp"
    fi
    case "$mode" in
        --release) (cd "$root/python" && maturin develop --quiet --release) ;;
        "") install_workspace_extension "$root" "$venv" ;;
        *) echo "python-env: ensure_python_env takes --release or nothing, not $mode" >&2; return 1 ;;
    esac
}

# The extension from a whole-workspace build (see above), copied beside python/famfs_run/*.py,
# and python/ put on the environment's path. PyO3 builds an extension module (no libpython
# linked: PYO3_BUILD_EXTENSION_MODULE, which maturin sets too) for the environment's Python.
install_workspace_extension() {
    local root=$1 venv=$2 site
    (cd "$root" && PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON="$venv/bin/python" \
        cargo build --quiet --workspace --lib --bins --tests) || return 1
    # A new file renamed into place: a process that has the old one mapped keeps it whole.
    cp "$CARGO_TARGET_DIR/debug/lib_native.so" "$root/python/famfs_run/._native.abi3.so.tmp" || return 1
    mv -f "$root/python/famfs_run/._native.abi3.so.tmp" "$root/python/famfs_run/_native.abi3.so" || return 1
    site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    # What maturin develop installed (its .pth and metadata may name another clone) gives way.
    rm -rf "$site"/famfs_run-*.dist-info "$site"/famfs_run.pth
    echo "$root/python" >"$site/famfs_run.pth"
}
