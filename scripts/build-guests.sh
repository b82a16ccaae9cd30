#!/usr/bin/env bash
# Builds the bundled guests and installs them where famfs-run and famfs_run find them by name
# (`famfs-run sql 'SELECT 1'`, `rt.load("sql")`; runtime/src/guests.rs):
# $XDG_DATA_HOME/famfs-run/guests, else ~/.local/share/famfs-run/guests (or --dest DIR, then put
# DIR in FAMFS_RUN_GUEST_PATH).
#
# The guests: the examples (arrow-agg, arrow-gen, grep, histogram, query, sum-handler, sum-u64,
# wc) and the SQL guest (sql, sql_handler; `--no-sql` skips it: DataFusion takes about 15
# minutes to build on two cores, the examples about 2). All for wasm32-wasip1, release, in the
# same target directories as the tests' builds (`$CARGO_TARGET_DIR/guests-target`,
# `$CARGO_TARGET_DIR/sql-target`), so after scripts/test.sh this only copies files. Installs the
# pinned toolchain and the C tools the SQL guest needs (scripts/guest-deps.sh) when missing.
#
# `--small` builds the SQL guest with fat link-time optimisation and one codegen unit instead
# (README, Benchmarks: 61.5 MB instead of 92.0, compiled by famfs-run in 43 s instead of 61,
# queries as fast or faster), in its own target directory (`$CARGO_TARGET_DIR/sql-target-small`,
# or FAMFS_SQL_SMALL_TARGET_DIR). Its link is one thread for about 10 minutes and needs several
# GB of memory, so the two SQL guests are linked one after the other; the first such build takes
# about 25 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

sql=1
small=0
dest=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-sql) sql=0 ;;
        --small) small=1 ;;
        --dest) dest=${2:?--dest needs a directory}; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-guests: unknown argument $1 (--no-sql, --small, --dest DIR)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$dest" ]; then
    data=${XDG_DATA_HOME:-}
    case "$data" in /*) ;; *) data=$HOME/.local/share ;; esac
    dest=$data/famfs-run/guests
fi

source scripts/ensure-toolchain.sh
ensure_toolchain .
started=$(date +%s)
examples=(arrow-agg arrow-gen grep histogram query sum-handler sum-u64 wc)

echo "build-guests: the example guests (wasm32-wasip1, release)"
# The whole guests workspace, as tests/build.rs builds it: the same features, so neither build
# redoes the other's work.
(cd guests && cargo build --release --locked --target wasm32-wasip1 --workspace \
    --target-dir "$CARGO_TARGET_DIR/guests-target")
built=("$CARGO_TARGET_DIR/guests-target/wasm32-wasip1/release/")

if [ "$sql" = 1 ]; then
    bash scripts/guest-deps.sh
    sql_target=${FAMFS_SQL_TARGET_DIR:-$CARGO_TARGET_DIR/sql-target}
    # As tests/build.rs builds it (zstd's C code with Debian's clang and wasi-libc headers).
    sql_build() {
        (cd guests/sql && CC_wasm32_wasip1=clang-14 AR_wasm32_wasip1=llvm-ar-14 \
            CFLAGS_wasm32_wasip1="-isystem /usr/include/wasm32-wasi" \
            cargo build --release --locked --target wasm32-wasip1 --features famfs-sql/guest "$@")
    }
    if [ "$small" = 1 ]; then
        sql_target=${FAMFS_SQL_SMALL_TARGET_DIR:-$CARGO_TARGET_DIR/sql-target-small}
        echo "build-guests: the SQL guest with fat LTO (the first build takes about 25 minutes on two cores)"
        # One fat-LTO link at a time: two at once took all of 24 GB of memory.
        for package in "-p famfs-sql --bin sql" "-p sql-handler"; do
            # shellcheck disable=SC2086
            CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
                sql_build $package --target-dir "$sql_target"
        done
    else
        echo "build-guests: the SQL guest (DataFusion; the first build takes about 15 minutes on two cores)"
        sql_build --workspace --target-dir "$sql_target"
    fi
    examples+=(sql sql_handler)
    built+=("$sql_target/wasm32-wasip1/release/")
fi

mkdir -p "$dest"
for name in "${examples[@]}"; do
    file=""
    for dir in "${built[@]}"; do
        for candidate in "$dir$name.wasm" "$dir${name//-/_}.wasm"; do
            [ -f "$candidate" ] && file=$candidate && break 2
        done
    done
    if [ -z "$file" ]; then
        echo "build-guests: $name.wasm was not built (looked in ${built[*]})" >&2
        exit 1
    fi
    # A new file renamed into place: a famfs-run that is loading the old one keeps it whole.
    install -m 0644 "$file" "$dest/.$(basename "$file").tmp"
    mv -f "$dest/.$(basename "$file").tmp" "$dest/$(basename "$file")"
done
echo "build-guests: installed ${examples[*]} into $dest in $(($(date +%s) - started)) s"
case "$dest" in
    "${XDG_DATA_HOME:-$HOME/.local/share}/famfs-run/guests") ;;
    *) echo "build-guests: famfs-run finds them by name with FAMFS_RUN_GUEST_PATH=$dest" ;;
esac
