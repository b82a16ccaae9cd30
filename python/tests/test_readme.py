"""The README's Python examples (section "Python and Ray"), run as written as one script, in the
environment its set-up gives a user (the guests found by name, this host's identity in
FAMFS_SYSTEM_UUID_FILE), the image in a temporary directory: the frame example alone, then with
the Ray and Dask one after it. Their printed answers are checked against pandas over the rows
the README's code says it writes."""

import io
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pytest

from conftest import GUESTS, SQL_GUESTS, check_group_by_against_pandas, sql_cache

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


def python_blocks() -> list:
    text = README.read_text()
    section = text[text.index("## Python and Ray") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the README's Python section has its frame example and its Ray/Dask one"
    return blocks


def run_as_script(code: str, tmp_path: pathlib.Path) -> list:
    """Runs `code` as the script `examples.py` in `tmp_path`; the objects it printed."""
    env = dict(os.environ)
    # What the README's set-up gives a user: the guests by name (here from the tests' builds,
    # which scripts/build-guests.sh installs), this host's identity in a file of the user's; and
    # the compiled SQL guest from the tests' cache. No Ray cluster to join.
    env["FAMFS_RUN_GUEST_PATH"] = f"{GUESTS}:{SQL_GUESTS}"
    env["FAMFS_RUN_CACHE"] = str(sql_cache())
    env.pop("FAMFS_SYSTEM_UUID", None)
    env["FAMFS_SYSTEM_UUID_FILE"] = str(tmp_path / "config/system_uuid")
    env.pop("RAY_ADDRESS", None)
    script = tmp_path / "examples.py"
    script.write_text(code)
    out = tmp_path / "printed.pickle"
    # A session of its own, so that a timeout also stops the Ray processes the script started.
    child = subprocess.Popen([sys.executable, "-c", SESSION, str(script), str(out)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
                             start_new_session=True)
    try:
        _, stderr = child.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    assert child.returncode == 0, stderr[-4000:]
    assert (tmp_path / "config/system_uuid").exists(), "the image was made with the user's identity file"
    with open(out, "rb") as f:
        return pickle.load(f)


def check_frame_example(printed: list):
    """The frame example's two answers: the SQL guest's table and arrow-agg's CSV text."""
    sales = pd.DataFrame({"region": ["n", "s", "n", "e"] * 250_000, "amount": range(1_000_000)})
    totals = sales.groupby("region")["amount"].sum()
    sql = printed[0]
    assert list(sql["region"]) == list(totals.index)
    assert list(sql["total"]) == list(totals)
    check_group_by_against_pandas(pd.read_csv(io.StringIO(printed[1])), sales, "region", "amount")


def test_readme_frame_example_runs_as_written(tmp_path):
    frames, _ = python_blocks()
    printed = run_as_script(frames, tmp_path)
    assert len(printed) == 2, printed
    check_frame_example(printed)


def test_readme_ray_and_dask_examples_run_as_written(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("distributed")
    pytest.importorskip("dask.dataframe")
    import famfs_run

    printed = run_as_script("\n".join(python_blocks()), tmp_path)
    assert len(printed) == 6, printed
    check_frame_example(printed[:2])

    # The rows the README's loop writes (8 shards: k = 0, 1, null; v = i, null, 2i), and the
    # same rows read back from the image.
    shards = [pd.DataFrame({"k": pd.array([0, 1, None] * 1000, "Int64"),
                            "v": pd.array([i, None, 2 * i] * 1000, "Float64")}) for i in range(8)]
    rows = pd.concat(shards, ignore_index=True)
    fs = famfs_run.Famfs(str(tmp_path / "frames.img"))
    names = sorted(e["name"] for e in fs.ls("shards"))
    assert names == [f"part-{i:02}.arrow" for i in range(8)]
    read = pd.concat((pa.ipc.open_file(pa.py_buffer(fs.open(f"shards/{n}"))).read_all()
                      .to_pandas(types_mapper=pd.ArrowDtype) for n in names), ignore_index=True)
    assert len(read) == 24_000
    pd.testing.assert_frame_equal(read.astype({"k": "Int64", "v": "Float64"}), rows)

    ray_arrow_agg, ray_sql, dask_frame, dask_arrow_agg = printed[2:]
    for answer in (ray_arrow_agg, ray_sql, dask_arrow_agg):
        check_group_by_against_pandas(answer, rows)
    check_group_by_against_pandas(dask_frame, rows, aggs=["count", "sum"])
