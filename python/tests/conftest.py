"""Shared fixtures: where the guests and tools built by `cargo test` are, images to work on.

The paths come from the environment scripts/test.sh sets (FAMFS_RUN_GUESTS, FAMFS_RUN_SQL_GUESTS,
FAMFS_RUN_BIN), else from the shared target directory (CARGO_TARGET_DIR, default
~/.cache/famfs-run/target)."""

import os
import pathlib
import uuid

import pytest

# The master's identity for every image made here (famfs decides who may write by it).
MASTER_UUID = "3a1c7e2b-9f0d-4c56-8e21-7b6d5a4f3e10"
os.environ["FAMFS_SYSTEM_UUID"] = MASTER_UUID

TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/famfs-run/target"))
GUESTS = pathlib.Path(os.environ.get("FAMFS_RUN_GUESTS", TARGET / "guests-target/wasm32-wasip1/release"))
SQL_GUESTS = pathlib.Path(os.environ.get("FAMFS_RUN_SQL_GUESTS", TARGET / "sql-target/wasm32-wasip1/release"))
BIN = pathlib.Path(os.environ.get("FAMFS_RUN_BIN", TARGET / "debug"))


def guest(name: str) -> pathlib.Path:
    p = GUESTS / f"{name}.wasm"
    if not p.exists():
        pytest.fail(f"guest {p} was not built: run `cargo test --workspace` (scripts/test.sh) first")
    return p


def sql_guest() -> pathlib.Path:
    p = SQL_GUESTS / "sql.wasm"
    if not p.exists():
        pytest.fail(f"the SQL guest {p} was not built: run `cargo test --workspace` (scripts/test.sh) first")
    return p


def sql_cache() -> pathlib.Path:
    """The compiled-guest cache the Rust tests keep for the SQL guest: compiled once, shared."""
    d = SQL_GUESTS.parent.parent / "compiled-guests"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


AGGREGATES = ["count", "sum", "mean", "min", "max"]


def check_group_by_against_pandas(got, df, key="k", value="v", aggs=AGGREGATES):
    """A group-by's answer (a pyarrow table, or a pandas frame with the keys as a column or as
    its index: famfs_run.ray's or famfs_run.dask's `group_by`, `sql_group_by`, arrow-agg's
    output, Dask's own) equals pandas' `groupby(key, dropna=False)[value].agg(aggs)` of the same
    rows: the same keys in order (a null key, NaN or NA, last), counts exactly, the other
    aggregates to 1e-9 (a null one as NaN)."""
    import numpy as np
    import pandas as pd

    got = got.to_pandas() if hasattr(got, "to_pandas") else got
    got = got.set_index(key) if key in got.columns else got
    want = df.groupby(key, dropna=False)[value].agg(aggs).sort_index()

    def numbers(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)

    if pd.api.types.is_numeric_dtype(want.index):
        np.testing.assert_array_equal(numbers(got.index), numbers(want.index))
    else:
        assert list(got.index) == list(want.index)
    for agg in aggs:
        if agg == "count":
            np.testing.assert_array_equal(numbers(got[agg]), numbers(want[agg]))
        else:
            np.testing.assert_allclose(numbers(got[agg]), numbers(want[agg]), rtol=1e-9)


def tool(name: str) -> pathlib.Path:
    p = BIN / name
    if not p.exists():
        pytest.fail(f"{p} was not built: run `cargo test --workspace` (scripts/test.sh) first")
    return p


@pytest.fixture
def image(tmp_path):
    """A fresh 256 MiB famfs image made by famfs_run."""
    import famfs_run

    path = tmp_path / f"famfs-{uuid.uuid4().hex[:8]}.img"
    famfs_run.Famfs.mkfs(path, size="256M")
    return path
