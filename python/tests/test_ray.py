"""famfs_run.ray on a real Ray cluster on this machine: ray.cluster_utils.Cluster starts a head
node and a second node (separate raylets and worker processes on loopback), each advertising
{"famfs": 1} and its own FAMFS_DEVICE: a copy of the same famfs image, as every host on a CXL
fabric maps the same memory. 16 shards; results equal pandas on the concatenated data; a guest
failure in one task arrives as that task's famfs-run exception; the cluster is stopped at the
end."""

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import famfs_run
from conftest import check_group_by_against_pandas, guest, sql_cache, sql_guest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

import famfs_run.ray as fr  # noqa: E402

SHARDS = [f"shards/part-{i:02}.arrow" for i in range(16)]
# Shards with missing values: nulls, NaN, an empty shard, groups whose values are all null (in
# one shard, and across shards), a null key.
GAPPY = [f"gappy/part-{i}.arrow" for i in range(4)]


def gappy_tables():
    """Float and integer values with gaps; the floats hold NaN as well as nulls."""
    f = float("nan")
    keys = [[0, 1, 1, 2, 2, 3, None], [], [0, 2, 2, 4, 4, None], [0, 1, 3, 3, 4]]
    floats = [[1.5, None, 2.0, None, None, f, 3.0], [], [2.5, None, f, None, None, 1.0], [4.0, 5.0, None, 7.0, None]]
    ints = [[1, None, 2, None, None, 9, 3], [], [2, None, None, None, None, 1], [4, 5, None, 7, None]]
    return [
        pa.table({"k": pa.array(k, pa.int64()), "x": pa.array(x, pa.float64()), "n": pa.array(n, pa.int64())})
        for k, x, n in zip(keys, floats, ints)
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 shards in one image, and the concatenated frame."""
    d = tmp_path_factory.mktemp("ray")
    image = d / "fabric.img"
    fs = famfs_run.Famfs.mkfs(image, size="512M")
    fs.mkdir("shards")
    rng = np.random.default_rng(16)
    frames = []
    for i, shard in enumerate(SHARDS):
        rows = int(rng.integers(20_000, 60_000))
        df = pd.DataFrame({"k": rng.integers(0, 40, rows), "v": rng.normal(10 * i, 5, rows)})
        famfs_run.write_feather(df, fs, shard)
        frames.append(df)
    fs.mkdir("gappy")
    for shard, table in zip(GAPPY, gappy_tables()):
        famfs_run.write_feather(table, fs, shard)
    # Each node's view of the fabric: the same bytes at its own path.
    devices = [d / "node-a.img", d / "node-b.img"]
    for dev in devices:
        shutil.copyfile(image, dev)
    return devices, pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def cluster(data):
    devices, _ = data
    env = {"FAMFS_RUN_CACHE": str(sql_cache())}
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "resources": {"famfs": 1},
            "object_store_memory": 150 * 1024 * 1024,
            "include_dashboard": False,
            "env_vars": {**env, "FAMFS_DEVICE": str(devices[0])},
        },
    )
    c.add_node(
        num_cpus=2,
        resources={"famfs": 1},
        object_store_memory=150 * 1024 * 1024,
        env_vars={**env, "FAMFS_DEVICE": str(devices[1])},
    )
    # A node without famfs: no famfs task may land there.
    c.add_node(num_cpus=1, object_store_memory=80 * 1024 * 1024, env_vars=env)
    c.wait_for_nodes()
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def test_tasks_run_on_famfs_nodes_each_opening_its_own_famfs(cluster, data):
    devices, _ = data
    famfs_nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"] and n["Resources"].get("famfs")}
    assert len(famfs_nodes) == 2 and len([n for n in ray.nodes() if n["Alive"]]) == 3
    results = fr.map_shards(guest("arrow-agg"), SHARDS, ["--info", "{shard}"], output="outcome")
    assert [r["shard"] for r in results] == SHARDS
    assert {r["node"] for r in results} == set(famfs_nodes), "tasks ran on the famfs nodes only"
    per_node = [sum(r["node"] == n for r in results) for n in famfs_nodes]
    assert per_node == [8, 8], f"16 shards round-robin over 2 famfs nodes: {per_node}"
    # One CPU per task (a guest runs on one thread) and a share of famfs, as the docs say.
    assert all(r["resources"] == {"CPU": 1.0, "famfs": fr.TASK_SHARE} for r in results), results[0]["resources"]
    by_node = {}
    for r in results:
        by_node.setdefault(r["node"], set()).add(r["device"])
        assert b"realigned: 0 buffers" in r["stdout"]
    assert sorted(d for ds in by_node.values() for d in ds) == sorted(map(str, devices))
    assert all(len(ds) == 1 for ds in by_node.values())


def test_tasks_ask_for_what_the_caller_passes(cluster, data):
    [r] = fr.map_shards(guest("arrow-agg"), SHARDS[:1], ["--info", "{shard}"], output="outcome", num_cpus=2,
                        ray_options={"memory": 64 * 1024 * 1024})
    assert r["resources"]["CPU"] == 2.0 and r["resources"]["famfs"] == fr.TASK_SHARE
    assert r["resources"]["memory"] == 64 * 1024 * 1024
    # A resource no node has: Ray could never place the tasks, so spreading says so at once.
    with pytest.raises(famfs_run.SetupError, match="no alive Ray node advertises the 'gpu-famfs' resource"):
        fr.submit(guest("arrow-agg"), SHARDS, resource="gpu-famfs")


def test_distributed_group_by_equals_pandas(cluster, data):
    _, df = data
    check_group_by_against_pandas(fr.group_by(guest("arrow-agg"), SHARDS, "k", "v"), df)
    # The guest as bytes, shipped through the object store, gives the same.
    check_group_by_against_pandas(fr.group_by(guest("arrow-agg").read_bytes(), SHARDS, "k", "v"), df)


def test_distributed_sql_group_by_equals_pandas(cluster, data):
    _, df = data
    # Compile the SQL guest once into the cache the nodes share (a minute of Cranelift).
    famfs_run.Runtime(cache_dir=sql_cache()).load(sql_guest())
    table = fr.sql_group_by(sql_guest(), SHARDS, "k", "v", max_memory="1G")
    check_group_by_against_pandas(table, df)


def test_groups_without_values_get_the_same_answer_from_every_engine(cluster, data):
    famfs_run.Runtime(cache_dir=sql_cache()).load(sql_guest())
    # pandas skips null and NaN alike.
    df = pa.concat_tables(gappy_tables()).to_pandas()
    for value in ["x", "n"]:
        want = df.groupby("k", dropna=False)[value].agg(["count", "sum", "mean", "min", "max"]).sort_index()
        # What pandas says of the groups without values (2: all null; 4: null in two shards).
        assert list(want.loc[[2, 4], "sum"]) == [0, 0] and want.loc[[2, 4], ["mean", "min", "max"]].isna().all().all()
        for name, table in [
            ("arrow-agg", fr.group_by(guest("arrow-agg"), GAPPY, "k", value)),
            ("sql", fr.sql_group_by(sql_guest(), GAPPY, "k", value, max_memory="1G")),
        ]:
            got = table.to_pydict()
            assert got["k"] == [0, 1, 2, 3, 4, None], name
            for column in ["count", "sum", "mean", "min", "max"]:
                # Missing is null (not NaN); numbers as pandas computes them.
                missing = [pd.isna(w) for w in want[column]]
                assert [g is None for g in got[column]] == missing, (name, value, column, got[column])
                present = [(g, w) for g, w, m in zip(got[column], want[column], missing) if not m]
                assert [g for g, _ in present] == pytest.approx([w for _, w in present], rel=1e-12), (name, value, column)
            if value == "n":
                assert pa.types.is_integer(table.schema.field("sum").type), (name, "integer sums stay integers")


def test_a_failing_guest_fails_its_task_with_its_error_kind(cluster, data):
    def args(shard):
        return ["spin"] if shard == SHARDS[3] else ["sum", shard]

    refs = fr.submit(guest("adversary"), SHARDS, args, output="text", timeout=1)
    ok = 0
    for shard, ref in zip(SHARDS, refs):
        if shard == SHARDS[3]:
            with pytest.raises(famfs_run.Timeout, match=rf"shard {shard}: the guest ran out of time \(limit 1000 ms\)"):
                ray.get(ref)
        else:
            assert ray.get(ref).strip()
            ok += 1
    assert ok == 15
    # A guest that exits non-zero is an ExitStatusError of its task.
    with pytest.raises(famfs_run.ExitStatusError, match=f"shard {SHARDS[0]}: .*arrow-agg.wasm exited with status"):
        fr.map_shards(guest("arrow-agg"), SHARDS[:1], ["{shard}", "no_such_column", "v"], output="csv")
