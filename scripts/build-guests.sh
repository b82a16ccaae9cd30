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
set -euo pipefail
cd "$(dirname "$0")/.."

sql=1
dest=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-sql) sql=0 ;;
        --dest) dest=${2:?--dest needs a directory}; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-guests: unknown argument $1 (--no-sql, --dest DIR)" >&2; exit 2 ;;
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
    echo "build-guests: the SQL guest (DataFusion; the first build takes about 15 minutes on two cores)"
    # As tests/build.rs builds it (zstd's C code with Debian's clang and wasi-libc headers).
    (cd guests/sql && CC_wasm32_wasip1=clang-14 AR_wasm32_wasip1=llvm-ar-14 \
        CFLAGS_wasm32_wasip1="-isystem /usr/include/wasm32-wasi" \
        cargo build --release --locked --target wasm32-wasip1 --workspace --features famfs-sql/guest \
        --target-dir "${FAMFS_SQL_TARGET_DIR:-$CARGO_TARGET_DIR/sql-target}")
    examples+=(sql sql_handler)
    built+=("${FAMFS_SQL_TARGET_DIR:-$CARGO_TARGET_DIR/sql-target}/wasm32-wasip1/release/")
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
