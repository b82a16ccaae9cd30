"""The pyarrow and pandas side of the Arrow tests and benchmark (python3, pyarrow, pandas).

  write PATH ROWS CHUNK COMPRESSION   write a table with pyarrow (Feather v2, CHUNK rows per
                                      record batch, COMPRESSION: uncompressed, lz4 or zstd)
  agg PATH KEY VALUE                  pandas' groupby of PATH: one JSON object per group
  time PATH KEY VALUE RUNS            time pandas reading PATH and grouping it (inside Python,
                                      interpreter start and imports excluded): JSON medians
"""

import json
import math
import statistics
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather


def table(rows):
    """Columns of several types, with nulls: string, dictionary, int32, int64, uint8, float64
    (with NaN), float32."""
    rng = np.random.default_rng(7)
    idx = np.arange(rows)

    def nulls_every(k, values):
        return [None if i % k == 0 else v for i, v in zip(idx, values)]

    sensors = [f"p{i:02d}" for i in range(40)] + ["p,41 \"q\"", "été"]
    sensor = [sensors[i] for i in rng.integers(0, len(sensors), rows)]
    sites = ["north", "south", "east", "west", "centre"]
    site = [sites[i] for i in rng.integers(0, len(sites), rows)]
    celsius = rng.normal(20.0, 8.0, rows)
    celsius[idx % 211 == 5] = np.nan
    return pa.table(
        {
            "sensor": pa.array(nulls_every(37, sensor), pa.string()),
            "site": pa.array(nulls_every(19, site), pa.string()).dictionary_encode(),
            "zone": pa.array(nulls_every(23, rng.integers(-20, 20, rows).tolist()), pa.int32()),
            "count": pa.array(nulls_every(11, rng.integers(-10**6, 10**6, rows).tolist()), pa.int64()),
            "level": pa.array(rng.integers(0, 256, rows), pa.uint8()),
            "celsius": pa.array(nulls_every(13, celsius.tolist()), pa.float64()),
            "ratio": pa.array(nulls_every(7, rng.random(rows).astype(np.float32).tolist()), pa.float32()),
        }
    )


def groupby(df, key, value):
    # The kernel's semantics: values as float64, NaN and nulls skipped, null keys one group.
    values = df[value].astype("float64")
    return values.groupby(df[key], dropna=False, observed=True, sort=True).agg(
        ["count", "sum", "mean", "min", "max"]
    )


def plain(x):
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if math.isnan(x) else float(x)
    return x


def main():
    cmd = sys.argv[1]
    if cmd == "write":
        path, rows, chunk, compression = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        feather.write_feather(table(rows), path, compression=compression, chunksize=chunk)
    elif cmd == "agg":
        path, key, value = sys.argv[2:5]
        res = groupby(pd.read_feather(path), key, value)
        out = []
        for k, row in res.iterrows():
            out.append({key: plain(k), **{c: plain(row[c]) for c in res.columns}})
        json.dump(out, sys.stdout)
    elif cmd == "time":
        path, key, value, runs = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        reads, groups = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            df = pd.read_feather(path, columns=[key, value])
            t1 = time.perf_counter()
            res = groupby(df, key, value)
            t2 = time.perf_counter()
            reads.append(t1 - t0)
            groups.append(t2 - t1)
            del df
        json.dump(
            {
                "read_s": statistics.median(reads),
                "groupby_s": statistics.median(groups),
                "groups": len(res),
                "count": int(res["count"].sum()),
            },
            sys.stdout,
        )
    else:
        sys.exit(f"unknown command {cmd}")


main()
