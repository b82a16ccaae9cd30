#!/usr/bin/env bash
# The README's demo: make a famfs image, copy a generated dataset into it, list, read and
# check it with famfsctl. No CXL hardware needed: the image file is the device.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-target/demo}
mkdir -p "$work"
# The demo plays the master host with an identity of its own instead of /opt/famfs/system_uuid.
export FAMFS_SYSTEM_UUID_FILE=${FAMFS_SYSTEM_UUID_FILE:-$work/system_uuid}
cargo build --quiet --release -p famfs --bin famfsctl
ctl=${CARGO_TARGET_DIR:-target}/release/famfsctl
img=$work/demo.img

echo "== generating a sample dataset (sensor readings, CSV)"
rm -rf "$work/dataset" && mkdir -p "$work/dataset/sensors"
awk 'BEGIN { srand(42); print "ts,sensor,celsius";
             for (i = 0; i < 400000; i++) printf "%d,s%02d,%.2f\n", 1700000000 + i, i % 16, 15 + 10 * rand() }' \
    > "$work/dataset/sensors/readings.csv"
printf 'Sample dataset for the famfs-run demo.\n' > "$work/dataset/README.txt"

echo "== famfsctl mkfs --size 1G $img"
"$ctl" mkfs --force --size 1G "$img"
echo "== famfsctl cp -r dataset /"
"$ctl" -d "$img" cp -r "$work/dataset" /
echo "== famfsctl ls -lR"
"$ctl" -d "$img" ls -lR
echo "== famfsctl stat dataset/sensors/readings.csv"
"$ctl" -d "$img" stat dataset/sensors/readings.csv
echo "== famfsctl cat dataset/sensors/readings.csv | head -3"
"$ctl" -d "$img" cat dataset/sensors/readings.csv | head -3
echo "== bytes read back through the extent map equal the source"
"$ctl" -d "$img" cat dataset/sensors/readings.csv | cmp - "$work/dataset/sensors/readings.csv" && echo "identical"
echo "== famfsctl fsck"
"$ctl" -d "$img" fsck
