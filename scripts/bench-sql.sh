#!/usr/bin/env bash
# The SQL guest's TPC-H benchmark (guests/sql/benches/tpch.rs): builds famfs-run and famfsctl
# (release), the SQL guest (wasm32-wasip1), then runs the benchmark, which prints a table of the
# guest's, native DataFusion's and DuckDB's times. DuckDB and pyarrow come from PyPI into a
# virtual environment of the benchmark's (FAMFS_BENCH_VENV, default ~/.cache/famfs-run/bench-venv).
# FAMFS_BENCH_SF (default 1), FAMFS_BENCH_RUNS (default 3), FAMFS_BENCH_DIR (default /dev/shm),
# FAMFS_BENCH_QUERIES (e.g. q1,q6) and FAMFS_BENCH_FORMATS (arrow, parquet) are passed on.
# SQL_WASM benchmarks another build of the guest, e.g. the one `build-guests.sh --small` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .
bash scripts/test-deps.sh
venv=${FAMFS_BENCH_VENV:-$HOME/.cache/famfs-run/bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
PIP_ROOT_USER_ACTION=ignore "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    duckdb==2.0.1 "$(grep '^pyarrow==' python/requirements-test.txt)"
export PATH="$venv/bin:$PATH"
cargo build --release -p famfs-runtime --bin famfs-run -p famfs --bin famfsctl
sql_target=${FAMFS_SQL_TARGET_DIR:-$CARGO_TARGET_DIR/sql-target}
host=$(rustc -vV | sed -n 's/^host: //p')
cd guests/sql
CC_wasm32_wasip1=clang-14 AR_wasm32_wasip1=llvm-ar-14 CFLAGS_wasm32_wasip1="-isystem /usr/include/wasm32-wasi" \
    cargo build --release --target wasm32-wasip1 --workspace --features famfs-sql/guest --target-dir "$sql_target"
SQL_WASM=${SQL_WASM:-$sql_target/wasm32-wasip1/release/sql.wasm} \
    cargo bench --target "$host" --bench tpch --features tpch --target-dir "$sql_target"
