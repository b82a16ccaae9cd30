#!/usr/bin/env bash
# The README's demo, on the embedded default (a famfs image file; no CXL hardware needed):
# make a famfs image with famfsctl, copy a generated dataset into it (an Arrow file and a CSV
# file), build the example guests, and run the `arrow-agg` guest (a group-by over the Arrow
# file) and the `wc` guest (over the CSV) with famfs-run, zero-copy.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-target/demo}
mkdir -p "$work"
# The demo plays the master host with an identity of its own instead of /opt/famfs/system_uuid.
export FAMFS_SYSTEM_UUID_FILE=${FAMFS_SYSTEM_UUID_FILE:-$work/system_uuid}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")

echo "== building famfsctl, famfs-run and the Arrow generator (release; the first build takes several minutes)"
cargo build --quiet --release -p famfs --bin famfsctl -p famfs-runtime --bin famfs-run
cargo build --quiet --release -p famfs-run-tests --example arrow-gen
echo "== building the example guests (wasm32-wasip1)"
(cd guests && cargo build --quiet --release --target wasm32-wasip1 --target-dir "$target/guests-target")
ctl=$target/release/famfsctl
run=$target/release/famfs-run
guests=$target/guests-target/wasm32-wasip1/release
img=$work/demo.img
gen=$target/release/examples/arrow-gen

echo "== generating a sample dataset: 2M sensor readings as an Arrow IPC file (arrow-rs), and a CSV file"
rm -rf "$work/dataset" && mkdir -p "$work/dataset/sensors"
"$gen" "$work/dataset/sensors/readings.arrow" 2000000
awk 'BEGIN { srand(42); print "ts,sensor,celsius";
             for (i = 0; i < 400000; i++) printf "%d,s%02d,%.2f\n", 1700000000 + i, i % 16, 15 + 10 * rand() }' \
    > "$work/dataset/sensors/readings.csv"
printf 'Sample dataset for the famfs-run demo.\n' > "$work/dataset/README.txt"

echo "== famfsctl mkfs --size 1G $img; cp -r dataset /"
"$ctl" mkfs --force --size 1G "$img"
"$ctl" -d "$img" cp -r "$work/dataset" /
"$ctl" -d "$img" ls -lR /dataset
"$ctl" -d "$img" fsck --quiet >/dev/null && echo "fsck: clean"

echo "== famfs-run --device $img --dataset / arrow-agg.wasm dataset/sensors/readings.arrow site celsius"
echo "   (group by site: count, sum, mean, min, max of celsius; the file is mapped, not copied)"
"$run" --device "$img" --dataset / "$guests/arrow-agg.wasm" dataset/sensors/readings.arrow site celsius
if python3 -c 'import pandas, pyarrow' >/dev/null 2>&1; then
    echo "== the same group-by in pandas, on the source file (pandas sums with compensation: last digits may differ)"
    python3 -c 'import sys, pandas as pd
df = pd.read_feather(sys.argv[1], columns=["site", "celsius"])
print(df.groupby("site", dropna=False)["celsius"].agg(["count", "sum", "mean", "min", "max"]).to_csv(), end="")' \
        "$work/dataset/sensors/readings.arrow"
fi

echo "== famfs-run --device $img --dataset / wc.wasm dataset/sensors/readings.csv"
"$run" --device "$img" --dataset / "$guests/wc.wasm" dataset/sensors/readings.csv
echo "== the same counts from coreutils wc on the source file"
wc "$work/dataset/sensors/readings.csv"
echo "== metrics (--json) of the group-by: bytes mapped zero-copy, peak guest memory"
"$run" --device "$img" --dataset / --json "$guests/arrow-agg.wasm" dataset/sensors/readings.arrow site celsius \
    | grep -E '"(bytes_mapped|peak_memory|run_ms)"'
