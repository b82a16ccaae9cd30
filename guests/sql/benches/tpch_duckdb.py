"""DuckDB's side of the TPC-H benchmark (benches/tpch.rs): the same files, scanned by DuckDB in
one thread. Arrow files are memory-mapped by pyarrow and registered; Parquet files are read by
DuckDB's own reader (views over read_parquet).

  python3 tpch_duckdb.py DIR FORMAT QUERIES.json RUNS
      DIR holds TABLE.FORMAT files (FORMAT: arrow or parquet); QUERIES.json is [[name, sql], ...].
      Prints JSON {name: {"seconds": median, "rows": [[cell as text, ...], ...]}}, or
      {"error": why} if duckdb is not installed.
"""

import json
import os
import statistics
import sys
import time

TABLES = ["lineitem", "orders", "customer", "supplier", "part", "partsupp", "nation", "region"]


def text(value):
    """A cell as DataFusion's CSV writes it: dates ISO, no value empty."""
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def main():
    try:
        import duckdb
        import pyarrow.feather as feather
    except ImportError as e:
        print(json.dumps({"error": f"{e} (python3 -m pip install duckdb pyarrow)"}))
        return
    d, fmt, queries, runs = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), int(sys.argv[4])
    con = duckdb.connect()
    con.execute("SET threads = 1")
    tables = {}
    for name in TABLES:
        path = f"{d}/{name}.{fmt}"
        if not os.path.exists(path):  # the benchmark writes only the tables its queries read
            continue
        if fmt == "parquet":
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        else:
            tables[name] = feather.read_table(path, memory_map=True)
            con.register(name, tables[name])
    out = {}
    for name, sql in queries:
        times, rows = [], []
        for _ in range(runs):
            t = time.perf_counter()
            rows = con.execute(sql).fetchall()
            times.append(time.perf_counter() - t)
        out[name] = {"seconds": statistics.median(times), "rows": [[text(c) for c in r] for r in rows]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
