"""The README's Python example, run as written (the guests found by name, the image in a
temporary directory), with its results checked against pandas."""

import contextlib
import io
import pathlib
import re

import pandas as pd

from conftest import GUESTS, SQL_GUESTS, sql_cache

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Python and Ray") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # The guests by name, from the tests' builds (scripts/build-guests.sh would install the same
    # files); the compiled SQL guest from the tests' cache.
    monkeypatch.setenv("FAMFS_RUN_GUEST_PATH", f"{GUESTS}:{SQL_GUESTS}")
    monkeypatch.setenv("FAMFS_RUN_CACHE", str(sql_cache()))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {})
    out = printed.getvalue()
    df = pd.DataFrame({"region": ["n", "s", "n", "e"] * 250_000, "amount": range(1_000_000)})
    totals = df.groupby("region")["amount"].sum()
    for region, total in totals.items():
        assert re.search(rf"^\d+\s+{region}\s+{total}$", out, re.M), out
        assert f"{region},{(df.region == region).sum()},{total}," in out, out
