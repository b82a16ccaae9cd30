"""The README's Python examples (section "Python and Ray"), run as written as one script: the
guests found by name, the image in a temporary directory, Ray on this machine, a Dask client.
Every value they print is checked against pandas over the same rows, read back from the image."""

import os
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conftest import GUESTS, SQL_GUESTS, sql_cache

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"

# Runs the script named by argv[1] as `__main__`, as `python script.py` would (so a worker
# process that re-imports the main script finds it), each `print`ed object kept and pickled to
# argv[2]. Its own names live in a function: the script's globals are the module's.
SESSION = """
import sys

def session(script, out):
    import pickle
    main = sys.modules["__main__"]
    main.__file__ = script
    printed = []
    main.__dict__["print"] = printed.append
    with open(script) as f:
        code = compile(f.read(), script, "exec")
    exec(code, main.__dict__)
    with open(out, "wb") as f:
        pickle.dump(printed, f)

session(*sys.argv[1:])
"""


def python_examples() -> str:
    text = README.read_text()
    section = text[text.index("## Python and Ray") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the README's Python section has its frame example and its Ray/Dask one"
    return "\n".join(blocks)


def group_by(df: pd.DataFrame, key: str, value: str, aggs) -> pd.DataFrame:
    """pandas' answer, as the examples print theirs: a column per aggregate, keys as a column."""
    return df.groupby(key, dropna=False)[value].agg(aggs).reset_index()


def assert_same_groups(got: pd.DataFrame, want: pd.DataFrame, key: str):
    got = got.reset_index() if key not in got.columns else got
    got = got[list(want.columns)].astype("float64").sort_values(key, na_position="last").reset_index(drop=True)
    want = want.astype("float64").sort_values(key, na_position="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)


def test_readme_python_examples_run_as_written(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("distributed")
    import famfs_run

    env = dict(os.environ)
    # The guests by name, from the tests' builds (scripts/build-guests.sh installs the same files);
    # the compiled SQL guest from the tests' cache.
    env["FAMFS_RUN_GUEST_PATH"] = f"{GUESTS}:{SQL_GUESTS}"
    env["FAMFS_RUN_CACHE"] = str(sql_cache())
    script = tmp_path / "examples.py"
    script.write_text(python_examples())
    out = tmp_path / "printed.pickle"
    run = subprocess.run([sys.executable, "-c", SESSION, str(script), str(out)], stdin=subprocess.DEVNULL,
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-4000:]
    with open(out, "rb") as f:
        printed = pickle.load(f)
    assert len(printed) == 6, printed

    # The frame example: its SQL answer and arrow-agg's text, against pandas.
    sales = pd.DataFrame({"region": ["n", "s", "n", "e"] * 250_000, "amount": range(1_000_000)})
    totals = sales.groupby("region")["amount"].sum()
    sql = printed[0]
    assert list(sql["region"]) == list(totals.index)
    assert list(sql["total"]) == list(totals)
    for region, total in totals.items():
        assert f"{region},{(sales.region == region).sum()},{total}," in printed[1], printed[1]

    # The shards, read back from the image the examples wrote.
    fs = famfs_run.Famfs(str(tmp_path / "frames.img"))
    names = sorted(e["name"] for e in fs.ls("shards"))
    assert len(names) == 8, names
    rows = pd.concat(pa.ipc.open_file(pa.py_buffer(fs.open(f"shards/{n}"))).read_all().to_pandas()
                     for n in names)
    assert rows["k"].isna().any() and rows["v"].isna().any(), "the shards have null keys and values"
    everything = ["count", "sum", "mean", "min", "max"]
    want = group_by(rows, "k", "v", everything)
    # A group whose values are all null (k = 1): count 0, sum 0, the rest null, as pandas.
    assert want.loc[want["k"] == 1, "count"].item() == 0

    ray_arrow_agg, ray_sql = printed[2:4]
    assert_same_groups(ray_arrow_agg, want, "k")
    assert_same_groups(ray_sql, want, "k")
    dask_frame, dask_arrow_agg = printed[4:6]
    assert_same_groups(dask_frame, group_by(rows, "k", "v", ["count", "sum"]), "k")
    assert_same_groups(dask_arrow_agg, want, "k")
    assert np.isnan(dask_arrow_agg.loc[dask_arrow_agg["k"] == 1, "mean"].astype("float64")).all()
