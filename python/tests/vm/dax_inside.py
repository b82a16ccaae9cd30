"""Runs inside a test machine (tests/src/vm.rs) against its real /dev/dax0.0: the famfs_run
package makes a famfs on the device, writes a pandas frame into it as Arrow, maps it back with
Famfs.open, and runs guests over the device with Runtime.run and Runtime.invoke. Started by
python/tests/test_dax_vm.py through famfs-vm; prints `dax: ...` lines and exits non-zero (an
assertion's traceback) when anything differs."""

import hashlib
import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc

import famfs_run

DEV = "/dev/dax0.0"
GUESTS = os.environ["FAMFS_RUN_GUESTS"]
work = os.path.join(os.environ["FAMFS_VM_SCRATCH"], "py")
os.makedirs(work, exist_ok=True)

fs = famfs_run.Famfs.mkfs(DEV)
assert fs.map_align == 2 << 20, fs.map_align
fs.mkdir("data")

# A frame written straight into the device as Arrow, then mapped back without a copy.
n = 200_000
rng = np.random.default_rng(7)
df = pd.DataFrame({"site": rng.integers(0, 50, n), "celsius": rng.normal(20, 5, n)})
famfs_run.write_feather(df, fs, "data/readings.arrow")
view = fs.open("data/readings.arrow")
assert bytes(view) == fs.cat("data/readings.arrow")
table = pa.ipc.open_file(pa.py_buffer(view)).read_all()
assert table.num_rows == n and table.column("celsius").to_pylist() == df["celsius"].tolist()
print(f"dax: write_feather + Famfs.open: {len(view)} bytes mapped from {DEV}")

# A text file of an odd size (its last 2 MiB unit partial), copied in and mapped back.
text = b"".join(b"famfs cxl %d\n" % i for i in range(400_000))
src = os.path.join(work, "odd.txt")
with open(src, "wb") as f:
    f.write(text)
fs.cp(src, "data/odd.txt")
assert hashlib.sha256(bytes(fs.open("data/odd.txt"))).hexdigest() == hashlib.sha256(text).hexdigest()

rt = famfs_run.Runtime()
out = rt.run(os.path.join(GUESTS, "wc.wasm"), ["data/odd.txt"], device=DEV, datasets=["data"]).check()
lines, words = text.count(b"\n"), len(text.split())
assert out.text == f"{lines} {words} {len(text)} data/odd.txt\n", out.text
assert out.metrics["bytes_mapped"] == len(text) and out.metrics["bytes_copied"] == 0, out.metrics
print(f"dax: Runtime.run wc over {DEV}: {out.text.strip()}, {out.metrics['bytes_mapped']} bytes mapped")

handler = rt.load(os.path.join(GUESTS, "sum_handler.wasm"), component=True)
words8 = np.frombuffer(text[: len(text) // 8 * 8], dtype="<u8")
tail = int.from_bytes(text[len(text) // 8 * 8 :], "little")
want = (int(words8.sum(dtype=np.uint64)) + tail) % (1 << 64)
reply = rt.invoke(handler, "map:data/odd.txt", device=DEV, datasets=["data"])
assert reply == str(want).encode(), (reply, want)
print(f"dax: Runtime.invoke sum_handler over {DEV}: {reply.decode()}")
sys.exit(0)
