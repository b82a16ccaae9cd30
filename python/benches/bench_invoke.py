"""Benchmark: famfs-run from Python, three ways, and Ray fan-out against one process.

1. N small handler invocations (the sum-handler over a 64 KiB famfs dataset, mapped zero-copy):
   through the extension (``Runtime.invoke``), through ``subprocess`` running the famfs-run CLI
   (``--cache-dir``, so no compile), and through famfs-serve over loopback HTTP (one keep-alive
   connection). Ratios against the extension, measured in the same run.
2. A group-by (arrow-agg) over 16 Arrow shards in one famfs image: Ray tasks on a local Ray
   cluster with a ``famfs`` resource vs the same 16 runs in a loop in this process.

Run by scripts/bench-python.sh (which builds everything in release mode); prints a table.
Environment: FAMFS_BENCH_CALLS (default 1000), FAMFS_BENCH_SHARD_ROWS (default 2,000,000),
FAMFS_BENCH_DIR (default /dev/shm), FAMFS_RUN_GUESTS, FAMFS_RUN_BIN (release famfs-run,
famfs-serve).
"""

import http.client
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

import famfs_run

CALLS = int(os.environ.get("FAMFS_BENCH_CALLS", "1000"))
SHARD_ROWS = int(os.environ.get("FAMFS_BENCH_SHARD_ROWS", "2000000"))
GUESTS = pathlib.Path(os.environ["FAMFS_RUN_GUESTS"])
BIN = pathlib.Path(os.environ["FAMFS_RUN_BIN"])
os.environ.setdefault("FAMFS_SYSTEM_UUID", "3a1c7e2b-9f0d-4c56-8e21-7b6d5a4f3e10")


def timed(f, n):
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - t0


def invocations(work: pathlib.Path):
    image = work / "bench.img"
    fs = famfs_run.Famfs.mkfs(image, size="64M", force=True)
    data = work / "d.bin"
    data.write_bytes(np.arange(8192, dtype=np.uint64).tobytes())
    fs.cp(data, "d")
    want = str(int(np.arange(8192, dtype=np.uint64).sum())).encode()
    handler = GUESTS / "sum_handler.wasm"
    cache = work / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)

    rt = famfs_run.Runtime(cache_dir=cache)
    program = rt.load(handler, component=True)
    assert rt.invoke(program, b"map:d", device=image, datasets=["d"]) == want
    ext = timed(lambda: rt.invoke(program, b"map:d", device=image, datasets=["d"]), CALLS)

    cli = [str(BIN / "famfs-run"), "--cache-dir", str(cache), "--device", str(image), "--dataset", "d",
           "--invoke", "handle", "--input", "-", str(handler)]

    def one_process():
        r = subprocess.run(cli, input=b"map:d", capture_output=True)
        assert r.returncode == 0 and r.stdout == want, r.stderr

    one_process()
    sub = timed(one_process, CALLS)

    manifest = work / "sum.toml"
    manifest.write_text(f'[module]\npath = "{handler}"\ninvoke = "handle"\n[source]\ndevice = "{image}"\n'
                        'datasets = ["d"]\n')
    server = subprocess.Popen([str(BIN / "famfs-serve"), "--listen", "127.0.0.1:0", "--cache-dir", str(cache),
                               "--function", f"sum={manifest}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        line = server.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"famfs-serve did not start: {line!r}")
        host, port = line.split("http://", 1)[1].strip().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port))

        def one_request():
            conn.request("POST", "/invoke/sum", body=b"map:d")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200 and body == want, (r.status, body)

        one_request()
        http_s = timed(one_request, CALLS)
    finally:
        server.terminate()
        server.wait()
    return [("extension (Runtime.invoke)", ext), ("subprocess famfs-run", sub), ("famfs-serve, loopback HTTP", http_s)]


def fan_out(work: pathlib.Path):
    import ray

    import famfs_run.ray as fr

    image = work / "shards.img"
    shard_bytes = SHARD_ROWS * 16
    fs = famfs_run.Famfs.mkfs(image, size=str(((16 * shard_bytes * 11 // 10) >> 21) + 16 << 21), force=True)
    fs.mkdir("shards")
    shards = [f"shards/part-{i:02}.arrow" for i in range(16)]
    rng = np.random.default_rng(7)
    for s in shards:
        famfs_run.write_feather(pd.DataFrame({"k": rng.integers(0, 1000, SHARD_ROWS),
                                              "v": rng.normal(0, 1, SHARD_ROWS)}), fs, s)
    agg = GUESTS / "arrow-agg.wasm"
    cache = work / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    os.environ["FAMFS_RUN_CACHE"] = str(cache)

    rt = famfs_run.Runtime(cache_dir=cache)
    program = rt.load(agg)

    def loop():
        return [rt.run(program, [s, "k", "v"], device=image, datasets=[s]).check() for s in shards]

    loop()
    runs = [timed(loop, 1) for _ in range(3)]
    ray.init(num_cpus=os.cpu_count(), resources={"famfs": 1}, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"FAMFS_DEVICE": str(image), "FAMFS_RUN_CACHE": str(cache)}})
    try:
        fr.group_by(agg, shards, "k", "v")  # workers start and load the guest
        rays = [timed(lambda: fr.group_by(agg, shards, "k", "v"), 1) for _ in range(3)]
    finally:
        ray.shutdown()
    return statistics.median(runs), statistics.median(rays), 16 * shard_bytes


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="famfs-run-bench-", dir=os.environ.get("FAMFS_BENCH_DIR", "/dev/shm")))
    print(f"famfs_run {famfs_run.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    rows = invocations(work)
    base = rows[0][1]
    print(f"\n{CALLS} handler invocations (sum-handler over a 64 KiB famfs dataset), one after another:")
    print(f"{'path':<30} {'total s':>9} {'per call µs':>12} {'calls/s':>9} {'÷ extension':>12}")
    for name, t in rows:
        print(f"{name:<30} {t:>9.3f} {t / CALLS * 1e6:>12.1f} {CALLS / t:>9.0f} {t / base:>12.2f}")
    one, fanned, total = fan_out(work)
    print(f"\nGroup-by over 16 shards ({total / 2**20:.0f} MiB of Arrow in one famfs image), medians of 3:")
    print(f"{'path':<30} {'s':>9} {'÷ one process':>14}")
    print(f"{'one process, a loop':<30} {one:>9.3f} {1.0:>14.2f}")
    print(f"{'Ray tasks (local cluster)':<30} {fanned:>9.3f} {fanned / one:>14.2f}")


if __name__ == "__main__":
    main()
