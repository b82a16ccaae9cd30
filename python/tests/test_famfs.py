"""famfs from Python: images made and filled here are what famfsctl (bit-compatible with real
famfs) reads, and every refusal is a clear exception that leaves the image as it was."""

import os
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import famfs_run
from conftest import MASTER_UUID, guest, tool


def famfsctl(*args, check=True):
    return subprocess.run([str(tool("famfsctl")), *map(str, args)], capture_output=True, check=check)


def test_mkfs_mkdir_cp_ls_stat_cat_open_fsck(image, tmp_path):
    fs = famfs_run.Famfs(image)
    fs.mkdir("a/b/c", parents=True)
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    fs.cp(src, "a/b/blob.bin", mode=0o640)

    assert [(e["name"], e["type"]) for e in fs.ls()] == [("a", "dir")]
    listing = fs.ls("a/b")
    assert [(e["name"], e["type"], e.get("size")) for e in listing] == [
        ("blob.bin", "file", len(data)),
        ("c", "dir", None),
    ]
    st = fs.stat("/a/b/blob.bin")
    assert st["type"] == "file" and st["size"] == len(data) and st["mode"] == 0o640
    assert len(st["extents"]) == 1 and st["extents"][0][0] % (2 << 20) == 0
    assert fs.cat("a/b/blob.bin") == data

    view = fs.open("a/b/blob.bin")
    assert view.readonly and len(view) == len(data) and view == data
    with pytest.raises(TypeError):
        view[0] = 1

    report = fs.fsck()
    assert report["clean"] and report["exit_code"] == 0, report["problems"]
    assert report["stats"]["files"] == 1 and report["stats"]["directories"] == 4

    # famfsctl (what real famfs accepts) sees the same file system.
    assert famfsctl("-d", image, "fsck").returncode == 0
    assert famfsctl("-d", image, "cat", "a/b/blob.bin").stdout == data


def test_recursive_cp_copies_a_tree_and_skips_empty_files(image, tmp_path):
    tree = tmp_path / "tree"
    (tree / "x" / "y").mkdir(parents=True)
    (tree / "top.txt").write_text("top\n")
    (tree / "x" / "mid.txt").write_text("middle\n")
    (tree / "x" / "y" / "deep.txt").write_text("deep\n")
    (tree / "x" / "empty").write_bytes(b"")
    fs = famfs_run.Famfs(image)
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        fs.cp(tree, "copy")
    (tree / "x" / "link-to-y").symlink_to(tree / "x" / "y")
    fs.cp(tree, "copy", recursive=True)
    assert fs.cat("copy/top.txt") == b"top\n"
    assert fs.cat("copy/x/mid.txt") == b"middle\n"
    assert fs.cat("copy/x/y/deep.txt") == b"deep\n"
    assert [e["name"] for e in fs.ls("copy/x")] == ["mid.txt", "y"]  # no empty file, no link
    fs.cp(tree / "x", "/", recursive=True)  # into the root
    assert fs.cat("mid.txt") == b"middle\n" and fs.cat("y/deep.txt") == b"deep\n"


def test_refusals_are_clear_and_change_nothing(image, tmp_path, monkeypatch):
    fs = famfs_run.Famfs(image)
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    fs.cp(src, "f")
    before = image.read_bytes()

    with pytest.raises(famfs_run.FamfsError, match="already exists"):
        fs.cp(src, "f")
    with pytest.raises(famfs_run.FamfsError, match="does not exist"):
        fs.cp(src, "no/such/dir/f")
    with pytest.raises(famfs_run.FamfsError, match="already holds a famfs"):
        famfs_run.Famfs.mkfs(image)
    with pytest.raises(FileNotFoundError, match="no such file"):
        fs.ls("missing")
    with pytest.raises(FileNotFoundError):
        fs.cat("missing")
    with pytest.raises(IsADirectoryError):
        fs.cat("/")
    with pytest.raises(ValueError):
        fs.mkdir("../escape")
    # Another host (a client) may read but not write.
    monkeypatch.setenv("FAMFS_SYSTEM_UUID", "00000000-0000-4000-8000-000000000001")
    with pytest.raises(famfs_run.FamfsError, match="this host is a client"):
        fs.mkdir("d")
    assert fs.cat("f") == b"x" * 100
    monkeypatch.setenv("FAMFS_SYSTEM_UUID", MASTER_UUID)
    assert image.read_bytes() == before

    with pytest.raises(famfs_run.FamfsError):
        famfs_run.Famfs(tmp_path / "f")  # not a famfs


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "k": rng.integers(0, 50, rows),
            "v": rng.normal(100, 25, rows),
            "name": rng.choice(["alpha", "beta", "gamma", None], rows),
            "when": pd.date_range("2026-01-01", periods=rows, freq="s"),
            "cat": pd.Categorical(rng.choice(["x", "y", "z"], rows)),
        }
    )


def test_write_feather_publishes_an_aligned_arrow_file_pandas_and_guests_read(image):
    fs = famfs_run.Famfs(image)
    fs.mkdir("frames")
    df = frame(100_000, 1)
    size = famfs_run.write_feather(df, fs, "frames/df.arrow")
    assert fs.stat("frames/df.arrow")["size"] == size

    view = fs.open("frames/df.arrow")
    back = pa.ipc.open_file(pa.py_buffer(view)).read_all()
    pd.testing.assert_frame_equal(back.to_pandas(), df)
    # Every buffer starts 64-byte aligned within the file (and so in memory).
    base = pa.py_buffer(view).address
    for column in back.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None and buf.size > 0:
                    assert (buf.address - base) % 64 == 0

    # A guest reads it in place: no buffer needed realigning.
    rt = famfs_run.Runtime()
    info = rt.run(guest("arrow-agg"), ["--info", "frames/df.arrow"], device=image, datasets=["frames"]).check()
    assert "rows: 100000" in info.text and "realigned: 0 buffers" in info.text, info.text
    want = df.groupby("k")["v"].agg(["count", "sum", "mean", "min", "max"])
    csv = rt.run(guest("arrow-agg"), ["frames/df.arrow", "k", "v"], device=image, datasets=["frames"]).check()
    arrow = rt.run(guest("arrow-agg"), ["--format", "arrow", "frames/df.arrow", "k", "v"], device=image,
                   datasets=["frames"]).check()
    for got in [pd.read_csv(pa.BufferReader(csv.stdout)), arrow.arrow().to_pandas()]:
        got = got.set_index("k").sort_index()
        np.testing.assert_array_equal(got["count"], want["count"])
        np.testing.assert_allclose(got[["sum", "mean", "min", "max"]], want[["sum", "mean", "min", "max"]], rtol=1e-12)
    assert arrow.arrow().schema.field("count").type == pa.uint64()


def test_write_feather_takes_tables_and_readers_and_refuses_other_things(image):
    fs = famfs_run.Famfs(image)
    table = pa.table({"a": pa.array(range(1000)), "s": pa.array([str(i) for i in range(1000)])})
    fs.write_feather(table, "t.arrow")
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    famfs_run.write_feather(reader, image, "r.arrow")
    # A pandas index is kept or dropped as asked.
    indexed = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="key"))
    famfs_run.write_feather(indexed, fs, "kept.arrow", preserve_index=True)
    famfs_run.write_feather(indexed, fs, "dropped.arrow", preserve_index=False)
    kept = pa.ipc.open_file(pa.py_buffer(fs.open("kept.arrow"))).read_all()
    dropped = pa.ipc.open_file(pa.py_buffer(fs.open("dropped.arrow"))).read_all()
    assert kept.column_names == ["v", "key"] and dropped.column_names == ["v"]
    for name in ["t.arrow", "r.arrow"]:
        assert pa.ipc.open_file(pa.py_buffer(fs.open(name))).read_all().equals(table)
    before = image.read_bytes()
    with pytest.raises(TypeError, match="not an Arrow table"):
        famfs_run.write_feather([1, 2, 3], fs, "bad.arrow")
    with pytest.raises(famfs_run.FamfsError, match="already exists"):
        famfs_run.write_feather(table, fs, "t.arrow")
    assert image.read_bytes() == before
    assert fs.fsck()["clean"]


def test_open_of_an_interleaved_file_reads_it(image, tmp_path):
    # famfsctl makes an interleaved file (several extents); open() gives its bytes all the same.
    data = os.urandom(9 << 20)
    src = tmp_path / "striped"
    src.write_bytes(data)
    famfsctl("-d", image, "cp", "--interleave", "2", src, "striped")
    fs = famfs_run.Famfs(image)
    assert len(fs.stat("striped")["extents"]) > 1
    assert fs.open("striped") == data
