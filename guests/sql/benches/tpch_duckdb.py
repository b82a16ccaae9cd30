"""DuckDB's side of the TPC-H benchmark (benches/tpch.rs): the same Arrow files, memory-mapped
by pyarrow and scanned by DuckDB in one thread.

  python3 tpch_duckdb.py DIR QUERIES.json RUNS
      DIR holds TABLE.arrow files; QUERIES.json is [[name, sql], ...]. Prints JSON
      {name: {"seconds": median, "rows": n}}, or {"error": why} if duckdb is not installed.
"""

import json
import statistics
import sys
import time


def main():
    try:
        import duckdb
        import pyarrow.feather as feather
    except ImportError as e:
        print(json.dumps({"error": f"{e} (python3 -m pip install duckdb pyarrow)"}))
        return
    d, queries, runs = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
    con = duckdb.connect()
    con.execute("SET threads = 1")
    tables = {}
    for name in ["lineitem", "orders", "customer", "supplier", "nation", "region", "part"]:
        tables[name] = feather.read_table(f"{d}/{name}.arrow", memory_map=True)
        con.register(name, tables[name])
    out = {}
    for name, sql in queries:
        times, rows = [], 0
        for _ in range(runs):
            t = time.perf_counter()
            rows = len(con.execute(sql).fetchall())
            times.append(time.perf_counter() - t)
        out[name] = {"seconds": statistics.median(times), "rows": rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
