"""Fuzzes the decoder behind ``Outcome.arrow()``: a guest's standard output, read as Arrow IPC.

A guest's output is as untrusted as any input (issue 21, item 8): pyarrow's reader checks the
messages but not the data, so ``Outcome.arrow()`` validates the table in full before handing it
out. This fuzzer feeds that exact code (``famfs_run._native._read_arrow_ipc``) with mutations of
valid Arrow IPC streams and files of many types (nested lists and structs, maps, dictionaries,
unions, views, run-end encoded arrays, strings, decimals, timestamps), and reads every table it
accepts in full (``to_pylist``, dictionary decoding, compute kernels), in worker processes.

It is a mutation fuzzer, not a coverage-guided one: pyarrow's C++ is not instrumented. What it
checks: no input crashes the process (a signal: a read out of bounds, an abort, the kernel's
out-of-memory killer), and bytes are either refused with an exception or give a table that can
be read in full within 2 GiB. Each input is
derived from ``(seed, worker, iteration)``, so a crash is reproduced by its numbers, and the
crashing input is saved under ``--artifacts``.

    python python/fuzz/arrow_outcome.py --iterations 1000000 --workers 2 --seed 1

prints one line of counts per worker and a total, and exits 1 if any input crashed a worker or
ran it out of memory.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import multiprocessing
import os
import random
import struct
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc


def tables() -> list[pa.Table]:
    """Small tables of every family of Arrow type whose buffers a reader must check."""
    ints = pa.array([1, None, -3, 2**40, 0], pa.int64())
    strs = pa.array(["a", "bb", None, "", "ccccc"])
    nested = pa.array([[1, 2], None, [], [3, None, 5], [6]], pa.list_(pa.int32()))
    structs = pa.array(
        [{"x": 1, "y": "p"}, None, {"x": None, "y": "qq"}, {"x": 4, "y": None}, {"x": 5, "y": "r"}],
        pa.struct([("x", pa.int16()), ("y", pa.string())]),
    )
    dict_col = pa.array(["u", "v", "u", None, "w"]).dictionary_encode()
    dict8 = pa.DictionaryArray.from_arrays(pa.array([0, 2, 1, None, 2], pa.int8()), pa.array(["k", "l", "m"]))
    maps = pa.array([[("a", 1)], None, [], [("b", 2), ("c", None)], [("d", 4)]], pa.map_(pa.string(), pa.int32()))
    deep = pa.array(
        [[{"s": ["x"], "n": 1}], [], None, [{"s": None, "n": 2}, {"s": ["y", "z"], "n": None}], [{"s": [], "n": 3}]],
        pa.list_(pa.struct([("s", pa.list_(pa.string())), ("n", pa.int64())])),
    )
    out = [
        pa.table({"i": ints, "s": strs, "l": nested}),
        pa.table({"st": structs, "d": dict_col, "d8": dict8}),
        pa.table({"m": maps, "deep": deep}),
        pa.table(
            {
                "ls": pa.array(["a", None, "bcd", "", "e"], pa.large_string()),
                "lb": pa.array([b"\x00", b"", None, b"xyz", b"w"], pa.large_binary()),
                "ll": pa.array([[1], None, [2, 3], [], [4]], pa.large_list(pa.int8())),
                "fsl": pa.array([[1, 2], [3, 4], None, [5, 6], [7, 8]], pa.list_(pa.int32(), 2)),
                "fsb": pa.array([b"ab", b"cd", None, b"ef", b"gh"], pa.binary(2)),
            }
        ),
        pa.table(
            {
                "b": pa.array([True, None, False, True, False]),
                "f": pa.array([1.5, None, float("nan"), -0.0, 1e300]),
                "ts": pa.array([datetime.datetime(2026, 1, 1), None] * 2 + [datetime.datetime(1970, 1, 1)], pa.timestamp("us")),
                "dec": pa.array([decimal.Decimal("1.23"), None, decimal.Decimal("-4.56"), decimal.Decimal("0"), decimal.Decimal("9.99")], pa.decimal128(5, 2)),
                "date": pa.array([0, 1, None, 19000, -1], pa.date32()),
            }
        ),
        pa.table(
            {
                "sv": pa.array(["short", "a string longer than twelve bytes", None, "", "x"], pa.string_view()),
                "bv": pa.array([b"a" * 20, b"", None, b"b", b"c" * 13], pa.binary_view()),
                "lv": pa.array([[1], None, [2, 3], [], [4]], pa.list_view(pa.int32())),
            }
        ),
        pa.table({"ree": pa.compute.run_end_encode(pa.array([1, 1, 1, 2, 2], pa.int32()))}),
        pa.table(
            {
                "su": pa.UnionArray.from_sparse(
                    pa.array([0, 1, 0, 1, 0], pa.int8()),
                    [pa.array([1, 2, 3, 4, 5]), pa.array(["a", "b", "c", "d", "e"])],
                ),
                "du": pa.UnionArray.from_dense(
                    pa.array([0, 1, 1, 0, 1], pa.int8()),
                    pa.array([0, 0, 1, 1, 2], pa.int32()),
                    [pa.array([10, 20]), pa.array(["x", "y", "z"])],
                ),
            }
        ),
    ]
    return out


def encodings(table: pa.Table) -> list[bytes]:
    """`table` as an IPC stream and as an IPC file, in two batches where it has rows for it."""
    batches = table.to_batches(max_chunksize=3)
    out = []
    for open_writer in (pa.ipc.new_stream, pa.ipc.new_file):
        sink = pa.BufferOutputStream()
        with open_writer(sink, table.schema) as w:
            for b in batches:
                w.write_batch(b)
        out.append(sink.getvalue().to_pybytes())
    return out


def corpus() -> list[bytes]:
    return [e for t in tables() for e in encodings(t)]


INT32 = [0, 1, -1, 2, 3, 7, 8, 16, 255, 256, 4096, 0x7FFFFFFF, -0x80000000, 0x7FFFFFF8, -8]
INT64 = [0, 1, -1, 8, 2**31, 2**32, 2**62, 2**63 - 1, -(2**63), 2**63 - 8]


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One to four random edits of `data`: bit flips, bytes, interesting 32- and 64-bit integers
    (Arrow's lengths, offsets and counts), truncation, duplication and splices."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            b = bytearray(rng.choice(others))
        op = rng.randrange(9)
        at = rng.randrange(len(b))
        if op == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op in (2, 3) and len(b) >= 4:
            at = rng.randrange(len(b) - 3) & ~(3 if op == 2 else 0)
            b[at : at + 4] = struct.pack("<i", rng.choice(INT32 + [len(b), rng.randrange(-(2**31), 2**31)]))
        elif op == 4 and len(b) >= 8:
            at = rng.randrange(len(b) - 7) & ~7
            b[at : at + 8] = struct.pack("<q", rng.choice(INT64 + [len(b)]))
        elif op == 5:
            del b[rng.randrange(len(b)) :]
        elif op == 6:
            end = min(len(b), at + rng.randint(1, 64))
            b[at:at] = b[at:end]
        elif op == 7:
            other = rng.choice(others)
            start = rng.randrange(len(other))
            b[at : at + rng.randint(1, 64)] = other[start : start + rng.randint(1, 64)]
        else:
            end = min(len(b), at + rng.randint(1, 16))
            del b[at:end]
    return bytes(b)


def exercise(table: pa.Table) -> None:
    """Reads every value of an accepted table, as code given it would."""
    table.to_pylist()
    for col in table.columns:
        t = col.type
        if pa.types.is_dictionary(t):
            pc.count_distinct(col.cast(t.value_type))
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            pc.sum(col)
            pc.min_max(col)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            pc.utf8_length(col)
    table.combine_chunks()


def input_for(seed: int, worker: int, i: int, seeds: list[bytes]) -> bytes:
    rng = random.Random(f"{seed}/{worker}/{i}")
    return mutate(rng, rng.choice(seeds), seeds)


def work(seed: int, worker: int, start: int, count: int, progress, counts) -> None:
    """Runs inputs `start..start+count` of `worker`; `progress` holds the one being run."""
    import resource

    from famfs_run import _native

    # A table that makes reading it take unbounded memory is a finding, not a machine's worth
    # of swap: past 2 GiB allocations fail with MemoryError, which is counted as such.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    seeds = corpus()
    for i in range(start, start + count):
        progress.value = i
        data = input_for(seed, worker, i, seeds)
        try:
            table = _native._read_arrow_ipc(data)
        except Exception:
            counts[1] += 1
            continue
        try:
            exercise(table)
            counts[0] += 1
        except MemoryError as e:
            counts[3] += 1
            print(f"MEMORY: input {worker}/{i} accepted, reading it ran out of memory: {e}", file=sys.stderr)
        except Exception as e:
            # Valid Arrow whose values Python cannot represent (a date out of range): an
            # exception, not a crash.
            counts[2] += 1
            if os.environ.get("FUZZ_VERBOSE"):
                print(f"unreadable input {worker}/{i}: {type(e).__name__}: {e}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=100_000, help="inputs per worker")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--artifacts", default="python/fuzz/artifacts", help="where crashing inputs go")
    args = ap.parse_args()

    t0 = time.monotonic()
    total = [0, 0, 0, 0]
    crashes = 0
    ctx = multiprocessing.get_context("spawn")
    # Each worker runs its share; a worker killed by a signal is restarted after the input that
    # killed it, which is saved.
    todo = {w: 0 for w in range(args.workers)}
    running = {}
    while todo or running:
        for w, start in list(todo.items()):
            # Written by the worker alone, read once it has ended (so no lock).
            progress, counts = ctx.Value("q", start, lock=False), ctx.Array("q", 4, lock=False)
            p = ctx.Process(target=work, args=(args.seed, w, start, args.iterations - start, progress, counts))
            p.start()
            running[w] = (p, progress, counts, start)
            del todo[w]
        for w, (p, progress, counts, start) in list(running.items()):
            p.join(timeout=0.2)
            if p.exitcode is None:
                continue
            del running[w]
            done = progress.value - start
            total = [a + b for a, b in zip(total, counts[:])]
            if p.exitcode == 0:
                print(
                    f"worker {w}: inputs {start}..{args.iterations}: {counts[0]} accepted, {counts[1]} refused, "
                    f"{counts[2]} unreadable, {counts[3]} out of memory"
                )
                continue
            crashes += 1
            bad = progress.value
            os.makedirs(args.artifacts, exist_ok=True)
            path = os.path.join(args.artifacts, f"crash-{args.seed}-{w}-{bad}.arrow")
            with open(path, "wb") as f:
                f.write(input_for(args.seed, w, bad, corpus()))
            print(f"worker {w}: CRASH (exit {p.exitcode}) on input {bad} after {done}: saved {path}", file=sys.stderr)
            if bad + 1 < args.iterations:
                todo[w] = bad + 1
    n = args.iterations * args.workers
    secs = time.monotonic() - t0
    print(
        f"total: {n} executions in {secs:.1f} s ({n / secs:.0f}/s), {total[0]} accepted, {total[1]} refused, "
        f"{total[2]} unreadable, {total[3]} out of memory, {crashes} crashes"
    )
    return 1 if crashes or total[3] else 0


if __name__ == "__main__":
    sys.exit(main())
