"""The pyarrow and pandas side of the SQL guest's tests (python3, pyarrow, pandas).

  make DIR ROWS CHUNK     write the test tables into DIR: readings.arrow (Feather v2,
                          uncompressed, CHUNK rows per record batch), readings_CODEC.parquet
                          (the same rows, row groups of CHUNK rows, one file per codec),
                          readings.csv, sites.csv, and typed.arrow (and typed_zstd.arrow):
                          1,000 rows of decimals, zoned timestamps, view and dictionary types
  answer NAME DIR         pandas' answer to the test query NAME over DIR's tables, as CSV
                          (header, then rows; floats rounded to 6 places; nulls empty)

The columns cover what the SQL tests ask of the guest: strings with nulls, a dictionary column,
integers and floats with nulls, dates, and a string_view column (which pyarrow writes with
8-byte alignment, so the guest must realign its 16-byte views).
"""

import csv
import datetime
import decimal
import io
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

CODECS = ["none", "snappy", "gzip", "brotli", "lz4", "zstd"]
SITES = ["north", "south", "east", "west", "centre"]


def table(rows):
    rng = np.random.default_rng(11)
    idx = np.arange(rows)

    def nulls_every(k, values):
        return [None if i % k == 0 else v for i, v in zip(idx, values)]

    sensors = [f"p{i:02d}" for i in range(40)] + ["p,41 \"q\"", "été"]
    notes = ["ok", "check battery", "recalibrated on site visit", "door open", "ÉTÉ chaud", "long note " * 3]
    return pa.table(
        {
            "sensor": pa.array(nulls_every(37, [sensors[i] for i in rng.integers(0, len(sensors), rows)]), pa.string()),
            "site": pa.array(nulls_every(19, [SITES[i] for i in rng.integers(0, len(SITES), rows)]), pa.string())
            .dictionary_encode(),
            "zone": pa.array(nulls_every(23, rng.integers(-20, 20, rows).tolist()), pa.int32()),
            "count": pa.array(nulls_every(11, rng.integers(-10**6, 10**6, rows).tolist()), pa.int64()),
            "celsius": pa.array(nulls_every(13, np.round(rng.normal(20.0, 8.0, rows), 3).tolist()), pa.float64()),
            "day": pa.array((np.datetime64("2025-01-01") + rng.integers(0, 365, rows)).astype("datetime64[D]"), pa.date32()),
            "note": pa.array(nulls_every(5, [notes[i] for i in rng.integers(0, len(notes), rows)]), pa.string_view()),
        }
    )


def typed(rows):
    """The types issue 22 asked for, each a column: decimal128 (with nulls) and decimal256,
    timestamps with a time zone (crossing Paris's switch to summer time), binary_view,
    string_view, dictionaries with int32 and int8 keys, large_string. Row i's values follow
    from i, so the tests can compute the answers."""
    start = datetime.datetime(2025, 3, 30, 0, 30, tzinfo=datetime.timezone.utc)
    ids = range(rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array([None if i % 7 == 0 else decimal.Decimal(i * 13) / 100 for i in ids], pa.decimal128(12, 2)),
            "big": pa.array([decimal.Decimal(i) * decimal.Decimal("1e20") for i in ids], pa.decimal256(40, 2)),
            "at": pa.array([start + datetime.timedelta(minutes=37 * i) for i in ids], pa.timestamp("us", tz="Europe/Paris")),
            "blob": pa.array([bytes([i % 256]) * (i % 40) for i in ids], pa.binary_view()),
            "label": pa.array([f"l{i % 9}" for i in ids], pa.string_view()),
            "kind": pa.array([["a", "b", "c"][i % 3] for i in ids]).dictionary_encode(),
            "kind8": pa.DictionaryArray.from_arrays(pa.array([i % 3 for i in ids], pa.int8()), pa.array(["x", "y", "z"])),
            "wide": pa.array([f"L{i % 5}" for i in ids], pa.large_string()),
        }
    )


def make(out, rows, chunk):
    t = table(rows)
    feather.write_feather(t, f"{out}/readings.arrow", compression="uncompressed", chunksize=chunk)
    # Compressed Arrow files, as pyarrow writes by default (LZ4) or when asked (ZSTD).
    for codec in ["lz4", "zstd"]:
        feather.write_feather(t, f"{out}/readings_arrow_{codec}.arrow", compression=codec, chunksize=chunk)
    plain = t.cast(pa.schema([f.with_type(pa.string()) if f.name in ("site", "note") else f for f in t.schema]))
    # Without dictionaries, a compressed file is refused only at its first record batch.
    feather.write_feather(plain, f"{out}/readings_plain_lz4.arrow", compression="lz4", chunksize=chunk)
    for codec in CODECS:
        pq.write_table(plain, f"{out}/readings_{codec}.parquet", compression=codec, row_group_size=chunk)
    pacsv.write_csv(plain, f"{out}/readings.csv")
    sites = pa.table(
        {
            "site": SITES + ["nowhere"],
            "region": ["highlands", "coast", "coast", "highlands", "city", "none"],
            "capacity": [120, 80, 95, 60, 200, 0],
        }
    )
    pacsv.write_csv(sites, f"{out}/sites.csv")
    types = typed(1000)
    feather.write_feather(types, f"{out}/typed.arrow", compression="uncompressed", chunksize=300)
    feather.write_feather(types, f"{out}/typed_zstd.arrow", compression="zstd", chunksize=300)


def frame(d):
    df = feather.read_table(f"{d}/readings.arrow").to_pandas()
    df["site"] = df["site"].astype(object)
    return df


# Each answer: a DataFrame whose columns and rows the SQL query of the same name (in sql.rs)
# must give, in order.
def answer(name, d):
    df = frame(d)
    if name == "group_by":
        g = df.groupby("site", dropna=False, sort=False)
        out = pd.DataFrame(
            {
                "rows": g.size(),
                "readings": g["celsius"].count(),
                "mean": g["celsius"].mean(),
                "low": g["zone"].min(),
                "high": g["count"].max(),
            }
        ).reset_index()
        out["key"] = out["site"].isna()
        return out.sort_values(["key", "site"]).drop(columns="key")
    if name == "filter":
        f = df[(df["zone"] > 5) & df["sensor"].str.startswith("p1", na=False)]
        return pd.DataFrame({"n": [len(f)], "total": [f["celsius"].sum()]})
    if name == "join":
        sites = pd.read_csv(f"{d}/sites.csv")
        j = df.merge(sites, on="site", how="inner")
        g = j.groupby("region")
        return pd.DataFrame({"n": g.size(), "mean": g["celsius"].mean(), "cap": g["capacity"].sum()}).reset_index()
    if name == "window":
        f = df[df["celsius"].notna() & df["site"].notna()].copy()
        f = f.sort_values(["site", "celsius", "day", "sensor"], ascending=[True, False, True, True])
        f["rn"] = f.groupby("site").cumcount() + 1
        f = f[f["rn"] <= 3]
        return f[["site", "day", "celsius", "rn"]].astype({"day": str})
    if name == "nulls":
        return pd.DataFrame(
            {
                "no_sensor": [df["sensor"].isna().sum()],
                "no_note": [df["note"].isna().sum()],
                "no_zone": [df["zone"].isna().sum()],
                "no_site": [df["site"].isna().sum()],
            }
        )
    if name == "strings":
        f = df[df["note"].notna()]
        g = f.groupby("note").size().reset_index(name="n")
        g["upper_len"] = g["note"].str.upper().str.len()
        return g.sort_values(["n", "note"], ascending=[False, True])[["note", "n", "upper_len"]]
    if name == "dates":
        f = df.copy()
        f["month"] = pd.to_datetime(f["day"]).dt.month
        g = f.groupby("month")
        return pd.DataFrame({"n": g.size(), "zones": g["zone"].sum()}).reset_index()
    raise SystemExit(f"unknown query {name}")


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "answer":
        out = answer(sys.argv[2], sys.argv[3])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(out.columns)
        for row in out.itertuples(index=False):
            w.writerow(["" if pd.isna(v) else (f"{v:.6f}" if isinstance(v, float) else v) for v in row])
        sys.stdout.write(buf.getvalue())
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
