"""famfs_run.dask on a real distributed cluster on this machine (a LocalCluster of two worker
processes, one thread each, every worker naming the famfs in FAMFS_DEVICE): a Dask DataFrame
whose partitions are famfs files, guests run per partition, answers equal to pandas on the same
data; a failing partition raises its famfs-run exception naming its shard."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import famfs_run
from conftest import check_group_by_against_pandas, guest, sql_cache, sql_guest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import famfs_run.dask as fd  # noqa: E402

SHARDS = [f"parts/part-{i:02}.arrow" for i in range(8)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 shards (one empty, nulls in some) in one image, and the concatenated frame."""
    d = tmp_path_factory.mktemp("dask")
    image = d / "fabric.img"
    fs = famfs_run.Famfs.mkfs(image, size="256M")
    fs.mkdir("parts")
    rng = np.random.default_rng(8)
    tables = []
    for i, shard in enumerate(SHARDS):
        rows = 0 if i == 5 else int(rng.integers(5_000, 20_000))
        v = rng.normal(10 * i, 3, rows)
        t = pa.table({
            "k": pa.array(rng.integers(0, 12, rows), pa.int64()),
            "v": pa.array(v, pa.float64(), mask=rng.random(rows) < 0.05),
            "name": pa.array([f"n{j % 7}" for j in range(rows)], pa.string()),
        })
        famfs_run.write_feather(t, fs, shard)
        tables.append(t)
    notes = d / "notes.txt"
    notes.write_text("not a table\n")
    fs.cp(notes, "parts/notes.txt")
    return image, pa.concat_tables(tables).to_pandas()


@pytest.fixture(scope="module")
def client(data):
    image, _ = data
    with pytest.MonkeyPatch.context() as mp:
        # Worker processes inherit these: each host's famfs, and the tests' compiled-guest cache.
        mp.setenv("FAMFS_DEVICE", str(image))
        mp.setenv("FAMFS_RUN_CACHE", str(sql_cache()))
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit="1GiB")
        c = distributed.Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()


def test_a_dataframe_of_famfs_files_equals_pandas(client, data):
    _, df = data
    ddf = fd.read_arrow(SHARDS)
    assert ddf.npartitions == len(SHARDS)
    assert list(ddf.columns) == ["k", "v", "name"]
    # Arrow-backed columns over the famfs pages.
    assert all(isinstance(t, pd.ArrowDtype) for t in ddf.dtypes)
    whole = ddf.compute()
    assert len(whole) == len(df)
    pd.testing.assert_frame_equal(whole.reset_index(drop=True).astype({"k": "int64", "v": "float64", "name": object}),
                                  df.astype({"name": object}), check_dtype=False)
    # pandas work on the workers, partition by partition.
    means = ddf.groupby("k")["v"].mean().compute().sort_index()
    np.testing.assert_allclose(means.astype("float64"), df.groupby("k")["v"].mean().sort_index(), rtol=1e-12)
    # Whole partitions were read on the workers (the graph holds paths, not data).
    assert ddf.map_partitions(len).compute().tolist()[5] == 0
    only = fd.read_arrow(SHARDS[:2], columns=["v"], arrow_dtypes=False).compute()
    assert list(only.columns) == ["v"] and only["v"].dtype == np.float64


def test_guests_per_partition_equal_pandas(client, data):
    _, df = data
    check_group_by_against_pandas(fd.group_by(guest("arrow-agg"), SHARDS, "k", "v"), df)
    famfs_run.Runtime(cache_dir=sql_cache()).load(sql_guest())
    check_group_by_against_pandas(fd.sql_group_by(sql_guest(), SHARDS, "k", "v", max_memory="1G"), df)
    # Any guest's Arrow output as a partition: the SQL guest filtering each shard.
    out = fd.run_guest(sql_guest(), SHARDS,
                       ["--format", "arrow", "--table", "t={shard}", "SELECT k, v FROM t WHERE v > 40 ORDER BY v"],
                       max_memory="1G")
    assert out.npartitions == len(SHARDS)
    got = out.compute().astype({"k": "int64", "v": "float64"}).sort_values("v").reset_index(drop=True)
    want = df[df.v > 40][["k", "v"]].sort_values("v").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_failing_partition_raises_its_error_naming_its_shard(client, data):
    with pytest.raises(famfs_run.ExitStatusError, match=f"shard {SHARDS[0]}: .*arrow-agg.wasm exited with status"):
        fd.group_by(guest("arrow-agg"), SHARDS[:1], "no_such_column", "v")
    # A file that is no Arrow file fails its partition, on the worker, naming the file.
    ddf = fd.read_arrow([SHARDS[0], "parts/notes.txt"])
    with pytest.raises(famfs_run.FamfsError, match="parts/notes.txt is not an Arrow IPC file"):
        ddf.compute()


def mapped_file(address):
    """The file mapped at `address` in this process (/proc/self/maps), or None."""
    for line in open("/proc/self/maps"):
        parts = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if start <= address < end:
            return parts[5].strip() if len(parts) == 6 else None
    return None


def test_partitions_are_read_in_place(data):
    # In this process, no cluster: a partition's columns are the famfs image's mapped pages.
    image, _ = data
    part = fd._read_partition(SHARDS[0], str(image), None, True)
    for column in ["k", "v", "name"]:
        chunk = part[column].array.__arrow_array__().chunk(0)
        data_buffer = chunk.buffers()[-1]
        assert mapped_file(data_buffer.address) == str(image), f"{column} was copied out of the famfs"
    # NumPy dtypes are a copy (pandas' own memory).
    copied = fd._read_partition(SHARDS[0], str(image), None, False)
    assert mapped_file(copied["v"].to_numpy().__array_interface__["data"][0]) != str(image)
