#!/usr/bin/env bash
# The README's demo, on the embedded default (a famfs image file; no CXL hardware needed):
# make a famfs image with famfsctl, copy a generated dataset into it, build the example guests,
# and run the `wc` guest with famfs-run over the dataset, zero-copy.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-target/demo}
mkdir -p "$work"
# The demo plays the master host with an identity of its own instead of /opt/famfs/system_uuid.
export FAMFS_SYSTEM_UUID_FILE=${FAMFS_SYSTEM_UUID_FILE:-$work/system_uuid}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")

echo "== building famfsctl and famfs-run (release; the first build takes several minutes)"
cargo build --quiet --release -p famfs --bin famfsctl -p famfs-runtime --bin famfs-run
echo "== building the example guests (wasm32-wasip1)"
(cd guests && cargo build --quiet --release --target wasm32-wasip1 --target-dir "$target/guests-target")
ctl=$target/release/famfsctl
run=$target/release/famfs-run
guests=$target/guests-target/wasm32-wasip1/release
img=$work/demo.img

echo "== generating a sample dataset (sensor readings, CSV)"
rm -rf "$work/dataset" && mkdir -p "$work/dataset/sensors"
awk 'BEGIN { srand(42); print "ts,sensor,celsius";
             for (i = 0; i < 400000; i++) printf "%d,s%02d,%.2f\n", 1700000000 + i, i % 16, 15 + 10 * rand() }' \
    > "$work/dataset/sensors/readings.csv"
printf 'Sample dataset for the famfs-run demo.\n' > "$work/dataset/README.txt"

echo "== famfsctl mkfs --size 1G $img; cp -r dataset /"
"$ctl" mkfs --force --size 1G "$img"
"$ctl" -d "$img" cp -r "$work/dataset" /
"$ctl" -d "$img" ls -lR /dataset
"$ctl" -d "$img" fsck --quiet >/dev/null && echo "fsck: clean"

echo "== famfs-run --device $img --dataset / wc.wasm dataset/sensors/readings.csv"
"$run" --device "$img" --dataset / "$guests/wc.wasm" dataset/sensors/readings.csv
echo "== the same counts from coreutils wc on the source file"
wc "$work/dataset/sensors/readings.csv"
echo "== metrics (--json): bytes mapped zero-copy, peak guest memory"
"$run" --device "$img" --dataset / --json "$guests/wc.wasm" dataset/sensors/readings.csv | grep -E '"(bytes_mapped|peak_memory|run_ms)"'
