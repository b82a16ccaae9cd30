#!/usr/bin/env bash
# The README's demo, on the embedded default (a famfs image file; no CXL hardware needed):
# make a famfs image with famfsctl, copy a generated dataset into it (an Arrow file and a CSV
# file), and run the `arrow-agg` guest (a group-by over the Arrow file) and the `wc` guest (over
# the CSV) with famfs-run, zero-copy; then check their answers against pandas and coreutils wc.
#
# It builds what it runs, famfsctl and famfs-run (release), and three guests (wasm32-wasip1):
# the data generator arrow-gen, which famfs-run runs in its sandbox like any guest, wc and
# arrow-agg; the host tools and the guests at the same time. The host build also compiles the
# Python extension and its dependencies, which the demo does not run, for a later `pip install`.
# Each step prints its elapsed time.
# DEMO_DIR (default target/demo) holds the image and the dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-toolchain.sh
ensure_toolchain .

work=${DEMO_DIR:-target/demo}
mkdir -p "$work"
# The demo plays the master host with an identity of its own instead of /opt/famfs/system_uuid.
export FAMFS_SYSTEM_UUID_FILE=${FAMFS_SYSTEM_UUID_FILE:-$work/system_uuid}
target=$CARGO_TARGET_DIR
ctl=$target/release/famfsctl
run=$target/release/famfs-run
# The demo's guests build apart from the tests' (which build every guest for two targets), so
# neither overwrites the other's.
guests_target=$target/demo-guests
guests=$guests_target/wasm32-wasip1/release
img=$work/demo.img

demo_start=$(date +%s%N)
step_start=$demo_start
# Prints a step's heading.
step() { echo "== $*"; }
# Prints the time since the last call (or the start) and starts the next step's clock.
took() {
    local now ms
    now=$(date +%s%N)
    ms=$(((now - step_start) / 1000000))
    printf '   (%s: %d.%01d s)\n' "$1" $((ms / 1000)) $((ms % 1000 / 100))
    step_start=$now
}

step "building famfsctl, famfs-run, the Python extension (release) and the guests arrow-gen, wc, arrow-agg (wasm32-wasip1), side by side"
echo "   (the first build compiles wasmtime: several minutes on two cores; later runs take seconds)"
guest_log=$work/guest-build.log
(
    cd guests
    started=$(date +%s)
    cargo build --quiet --locked --release --target wasm32-wasip1 -p arrow-gen -p wc -p arrow-agg --target-dir "$guests_target"
    echo "   (guests built in $(($(date +%s) - started)) s)"
) >"$guest_log" 2>&1 &
guest_build=$!
host_started=$(date +%s)
# With the Python extension too (`--lib`; PYO3_BUILD_EXTENSION_MODULE as maturin sets it: an
# extension links no libpython), so that `pip install ./python` (README) finds its dependencies
# built, wasmtime, arrow-rs and PyO3 with the same features, and compiles only what depends on
# its interpreter's path (pyo3 and the extension: 13 s instead of 61 on two cores). Without a
# Python interpreter PyO3 builds for the stable ABI all the same: the demo needs no Python.
PYO3_BUILD_EXTENSION_MODULE=1 cargo build --quiet --locked --release -p famfs -p famfs-runtime -p famfs-run-python --bins --lib
echo "   (host tools and the Python extension built in $(($(date +%s) - host_started)) s)"
if ! wait "$guest_build"; then
    cat "$guest_log" >&2
    echo "demo: building the guests failed (above)" >&2
    exit 1
fi
cat "$guest_log"
took "build"

step "generating a sample dataset: 2M sensor readings as an Arrow IPC file (arrow-rs, in a guest), and a CSV file"
rm -rf "$work/dataset" && mkdir -p "$work/dataset/sensors"
"$run" "$guests/arrow-gen.wasm" - 2000000 >"$work/dataset/sensors/readings.arrow"
awk 'BEGIN { srand(42); print "ts,sensor,celsius";
             for (i = 0; i < 400000; i++) printf "%d,s%02d,%.2f\n", 1700000000 + i, i % 16, 15 + 10 * rand() }' \
    >"$work/dataset/sensors/readings.csv"
printf 'Sample dataset for the famfs-run demo.\n' >"$work/dataset/README.txt"
took "dataset"

step "famfsctl mkfs --size 1G $img; cp -r dataset /"
"$ctl" mkfs --force --size 1G "$img"
"$ctl" -d "$img" cp -r "$work/dataset" /
"$ctl" -d "$img" ls -lR /dataset
"$ctl" -d "$img" fsck --quiet >/dev/null && echo "fsck: clean"
took "image"

step "famfs-run --device $img --dataset / arrow-agg.wasm dataset/sensors/readings.arrow site celsius"
echo "   (group by site: count, sum, mean, min, max of celsius; the file is mapped, not copied)"
"$run" --device "$img" --dataset / "$guests/arrow-agg.wasm" dataset/sensors/readings.arrow site celsius \
    | tee "$work/groupby.csv"
took "group-by"
if python3 -c 'import pandas, pyarrow' >/dev/null 2>&1; then
    step "the same group-by in pandas, on the source file"
    python3 - "$work/dataset/sensors/readings.arrow" "$work/groupby.csv" <<'EOF'
import csv, math, sys
import pandas as pd
df = pd.read_feather(sys.argv[1], columns=["site", "celsius"])
want = df.groupby("site", dropna=False)["celsius"].agg(["count", "sum", "mean", "min", "max"])
print(want.to_csv(), end="")
got = {row["site"]: row for row in csv.DictReader(open(sys.argv[2]))}
wanted = {("" if (isinstance(k, float) and math.isnan(k)) else str(k)): v for k, v in want.iterrows()}
assert set(got) == set(wanted), f"groups differ: {sorted(got)} vs {sorted(wanted)}"
for key, row in wanted.items():
    g = got[key]
    assert int(g["count"]) == int(row["count"]), (key, "count")
    for col in ("min", "max"):
        assert float(g[col]) == float(row[col]), (key, col)
    # pandas sums with compensation, the guest in order: the last digits may differ.
    for col in ("sum", "mean"):
        assert math.isclose(float(g[col]), float(row[col]), rel_tol=1e-9), (key, col, g[col], row[col])
print(f"group-by agrees with pandas: {len(wanted)} groups (counts, min, max exact; sum, mean to 1e-9)")
EOF
    took "pandas"
fi

step "famfs-run --device $img --dataset / wc.wasm dataset/sensors/readings.csv"
guest_wc=$("$run" --device "$img" --dataset / "$guests/wc.wasm" dataset/sensors/readings.csv)
echo "$guest_wc"
took "wc"
step "the same counts from coreutils wc on the source file"
native_wc=$(wc "$work/dataset/sensors/readings.csv")
echo "$native_wc"
if [ "$(awk '{print $1, $2, $3}' <<<"$guest_wc")" = "$(awk '{print $1, $2, $3}' <<<"$native_wc")" ]; then
    echo "wc agrees with coreutils: $(awk '{print $1 " lines, " $2 " words, " $3 " bytes"}' <<<"$native_wc")"
else
    echo "demo: the guest's counts differ from coreutils wc" >&2
    exit 1
fi

step "metrics (--json) of the group-by: bytes mapped zero-copy, peak guest memory"
"$run" --device "$img" --dataset / --json "$guests/arrow-agg.wasm" dataset/sensors/readings.arrow site celsius \
    | grep -E '"(bytes_mapped|peak_memory|run_ms)"'
took "metrics"
total_ms=$((($(date +%s%N) - demo_start) / 1000000))
printf '== demo done in %d.%01d s\n' $((total_ms / 1000)) $((total_ms % 1000 / 100))
