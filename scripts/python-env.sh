# shellcheck shell=bash
# Sourced by scripts/python-tests.sh and scripts/bench-python.sh: a virtual environment outside
# the clone (FAMFS_RUN_VENV, default ~/.cache/famfs-run/venv) with python/requirements-test.txt
# installed, activated, and the famfs_run extension built into it by maturin, in the shared
# target directory (so it reuses the wasmtime that `cargo test` built).
#
# ensure_python_env [--release]: --release builds the extension optimised (benchmarks).

ensure_python_env() {
    local root venv stamp profile=()
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${FAMFS_RUN_VENV:-$HOME/.cache/famfs-run/venv}"
    [ "${1:-}" = "--release" ] && profile=(--release)
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
    (cd "$root/python" && maturin develop --quiet "${profile[@]}") || return 1
}
