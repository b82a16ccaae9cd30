"""famfs-run on Ray: run a guest over many famfs datasets as Ray tasks, each on a node that has a
famfs, and combine the results on the driver.

Every node that has famfs memory advertises a custom resource and says where its famfs is::

    FAMFS_DEVICE=/dev/dax0.0 ray start --address HEAD:6379 --resources '{"famfs": 1}'

Tasks ask for one CPU (a guest runs on one thread) and a small fraction of that resource (so
none runs on a node without famfs: a node runs as many at once as it has CPUs), are placed
round-robin over the famfs nodes, open the famfs named by the call's ``device`` or else by the
node's ``FAMFS_DEVICE``, run the guest over one shard with famfs-run, and return its output. With
famfs, every host maps the same files from the same shared memory: a shard is read where the
task runs, zero-copy, and nothing but results crosses the network.

A distributed group-by (map: partial aggregates per shard in a guest; reduce: on the driver)::

    import famfs_run.ray as fr
    table = fr.group_by("arrow-agg", [f"shards/part-{i:02}.arrow" for i in range(16)], "k", "v")

and the same with the SQL guest::

    table = fr.sql_group_by("sql", shards, "k", "v")

Guests are given by name (each node's installed guest: ``scripts/build-guests.sh``), as a path
that exists on every node, or as bytes (shipped through Ray's object store once). Compiled code is kept per node in ``FAMFS_RUN_CACHE`` (default the user's cache
directory, ``~/.cache/famfs-run/compiled``), so each node compiles a guest once.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc

import famfs_run

try:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("famfs_run.ray needs Ray: pip install 'famfs_run[ray]' (or pip install ray)") from e

#: The custom resource a node advertises when it has a famfs.
RESOURCE = "famfs"
#: How much of it each task takes: small enough that CPUs, not this, bound a node's tasks.
TASK_SHARE = 0.01
#: The CPUs each task declares: a guest runs on one thread.
TASK_CPUS = 1.0
#: The environment variable that names a node's famfs device or image.
DEVICE_ENV = "FAMFS_DEVICE"

Output = str  # "arrow" | "csv" | "bytes" | "text" | "outcome"
ArgsSpec = Union[Sequence[str], Callable[[str], Sequence[str]]]

_runtime: Optional[famfs_run.Runtime] = None


def worker_runtime() -> famfs_run.Runtime:
    """This process's runtime (one per Ray worker process, made on first use), its compiled
    guests cached on disk in ``FAMFS_RUN_CACHE``, else in the user's cache directory (as the
    command line's: ``~/.cache/famfs-run/compiled``)."""
    global _runtime
    if _runtime is None:
        _runtime = famfs_run.Runtime()
    return _runtime


def _shard_args(args: ArgsSpec, shard: str) -> List[str]:
    if callable(args):
        return [str(a) for a in args(shard)]
    return [str(a).replace("{shard}", shard) for a in args]


def _run_one(guest: Any, shard: str, args: List[str], device: Optional[str], datasets: Optional[List[str]],
             output: Output, run_options: Dict[str, Any]) -> Any:
    device = device or os.environ.get(DEVICE_ENV)
    if not device:
        raise famfs_run.SetupError(
            f"no famfs on this node ({socket.gethostname()}): pass device= or start the node with {DEVICE_ENV} set"
        )
    rt = worker_runtime()
    try:
        outcome = rt.run(guest, args, device=device, datasets=datasets if datasets is not None else [shard],
                         **run_options)
        outcome.check()
    except famfs_run.FamfsRunError as e:
        # The same exception, its message saying which shard failed (the driver sees many).
        if e.args and isinstance(e.args[0], str):
            e.args = (f"shard {shard}: {e.args[0]}",) + e.args[1:]
        e.shard = shard
        raise
    if output == "arrow":
        return outcome.arrow()
    if output == "csv":
        import pyarrow.csv

        return pyarrow.csv.read_csv(pa.BufferReader(outcome.stdout))
    if output == "bytes":
        return outcome.stdout
    if output == "text":
        return outcome.text
    if output == "outcome":
        return {
            "shard": shard,
            "exit_code": outcome.exit_code,
            "stdout": outcome.stdout,
            "stderr": outcome.stderr,
            "metrics": outcome.metrics,
            "node": ray.get_runtime_context().get_node_id(),
            "device": device,
            "resources": ray.get_runtime_context().get_assigned_resources(),
        }
    raise ValueError(f"output={output!r}: use 'arrow', 'csv', 'bytes', 'text' or 'outcome'")


_remote_run = ray.remote(_run_one)


def famfs_nodes(resource: str = RESOURCE) -> List[str]:
    """The ids of the alive Ray nodes that advertise ``resource``, in a stable order."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) > 0)


def submit(guest: Union[str, "os.PathLike[str]", bytes], shards: Sequence[str], args: ArgsSpec = ("{shard}",), *,
           device: Optional[str] = None, datasets: Optional[List[str]] = None, output: Output = "arrow",
           resource: str = RESOURCE, share: float = TASK_SHARE, num_cpus: float = TASK_CPUS,
           resources: Optional[Dict[str, float]] = None, spread: bool = True, max_retries: int = 0,
           ray_options: Optional[Dict[str, Any]] = None, **run_options: Any) -> List["ray.ObjectRef"]:
    """Starts one Ray task per shard and returns their object references (in shard order).

    ``args`` are the guest's arguments, ``"{shard}"`` replaced by the shard's name (or a function
    of the shard). Each task is granted only its shard (or ``datasets``), on the famfs at
    ``device`` or the node's ``FAMFS_DEVICE``. ``output`` picks what each task returns: the
    guest's Arrow output as a ``pyarrow.Table`` (``"arrow"``), its CSV output parsed into one
    (``"csv"``), its stdout as ``bytes`` or
    ``"text"``, or a dict with the outcome, node, device and the Ray resources the task holds (``"outcome"``). ``run_options``
    (``timeout``, ``max_memory``, ``fuel``, ``env``, ...) go to :meth:`famfs_run.Runtime.run`.

    What each task asks of Ray: ``num_cpus`` (default 1), ``share`` of ``resource`` (so it runs
    on famfs nodes only), and any other ``resources`` (``{"memory_gb": 2}``, a GPU-less custom
    resource, ...). With ``spread`` (the default) the shards go round-robin over the alive nodes
    that advertise ``resource`` (Ray's node affinity, soft: a node that dies or cannot take the
    task hands it to another), so 16 shards on 2 nodes are 8 and 8; without it Ray places them.
    ``ray_options`` go to ``.options()`` last (``memory``, ``runtime_env``,
    ``scheduling_strategy``, ...), over what this function chose.

    A task whose guest fails raises the famfs-run exception (``famfs_run.Timeout``,
    ``famfs_run.Trap``, ``famfs_run.ExitStatusError``, ...) from ``ray.get``, its message
    starting with ``shard NAME:`` (and its ``shard`` attribute set). Failed guests are not
    retried unless ``max_retries`` says so.
    """
    if isinstance(guest, bytes):
        guest_ref: Any = ray.put(guest)
    else:
        guest_ref = os.fspath(guest)
    options: Dict[str, Any] = {
        "num_cpus": num_cpus,
        "resources": {**(resources or {}), resource: share},
        "max_retries": max_retries,
        "retry_exceptions": False,
    }
    nodes = famfs_nodes(resource) if spread else []
    if spread and not nodes:
        raise famfs_run.SetupError(
            f"no alive Ray node advertises the {resource!r} resource: start famfs nodes with "
            f"--resources '{{\"{resource}\": 1}}' (or pass spread=False to let Ray wait for one)"
        )
    refs = []
    for i, shard in enumerate(shards):
        task_options = dict(options)
        if nodes:
            task_options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)
        task_options.update(ray_options or {})
        refs.append(_remote_run.options(**task_options).remote(
            guest_ref, shard, _shard_args(args, shard), device, datasets, output, run_options))
    return refs


def map_shards(guest: Union[str, "os.PathLike[str]", bytes], shards: Sequence[str], args: ArgsSpec = ("{shard}",),
               **options: Any) -> List[Any]:
    """:func:`submit`, then waits for every task: the results in shard order."""
    return ray.get(submit(guest, shards, args, **options))


def combine_partials(partials: Sequence[pa.Table], key: str) -> pa.Table:
    """Reduces per-shard partial aggregates (columns ``key``, ``count``, ``sum``, ``min``,
    ``max``) into the aggregates of the whole: counts and sums added, min of mins, max of maxes,
    and ``mean`` = sum / count; sorted by ``key`` (a null key last).

    As pandas' ``groupby(key, dropna=False)[value].agg(["count", "sum", "mean", "min", "max"])``
    answers: null and NaN values are skipped, and a group without values (all of them null) has
    count 0, sum 0, and a null mean, min and max. The partials must say the same of such a group:
    sum 0 (arrow-agg's does; :func:`sql_group_by`'s query asks for it), min and max null."""
    cols = [key, "count", "sum", "min", "max"]
    parts = [t.select(cols) for t in partials]
    # A shard whose values were all integers has integer sums, another float ones: add as floats.
    schema = parts[0].schema
    for c in ["sum", "min", "max"]:
        if any(p.schema.field(c).type != schema.field(c).type for p in parts):
            schema = schema.set(schema.get_field_index(c), pa.field(c, pa.float64()))
    whole = pa.concat_tables([p.cast(schema) for p in parts])
    g = whole.group_by(key).aggregate([("count", "sum"), ("sum", "sum"), ("min", "min"), ("max", "max")])
    g = g.rename_columns([key if c == key else c.rsplit("_", 1)[0] for c in g.column_names])
    mean = pc.divide(pc.cast(g["sum"], pa.float64()), pc.cast(g["count"], pa.float64()))
    # 0 / 0 is NaN; a group without values has no mean.
    mean = pc.if_else(pc.equal(g["count"], 0), pa.scalar(None, pa.float64()), mean)
    g = g.append_column("mean", mean)
    return g.select([key, "count", "sum", "mean", "min", "max"]).sort_by(key)


def group_by(guest: Union[str, "os.PathLike[str]", bytes], shards: Sequence[str], key: str, value: str,
             **options: Any) -> pa.Table:
    """A distributed group-by with the ``arrow-agg`` guest: per shard, in a Ray task on a famfs
    node, the count, sum, min and max of ``value`` by ``key`` (arrow-agg's Arrow output, a
    table in the task); combined on the driver (:func:`combine_partials`)."""
    partials = map_shards(guest, shards, ["--format", "arrow", "{shard}", key, value], output="arrow", **options)
    return combine_partials(partials, key)


def _sql_name(column: str) -> str:
    """A column's name as a SQL identifier (quoted: any name, any case)."""
    return '"' + column.replace('"', '""') + '"'


def sql_group_by(guest: Union[str, "os.PathLike[str]", bytes], shards: Sequence[str], key: str, value: str,
                 **options: Any) -> pa.Table:
    """The same group-by as :func:`group_by`, each shard's partial aggregates computed by the
    ``sql`` guest (DataFusion) with a SQL query; the same answers, all-null groups included."""
    # As pandas and arrow-agg do: NaN is skipped like null (SQL would count it, and propagate it
    # into the sum, min and max), and the sum of no values is 0 (SQL's is NULL).
    k, v = _sql_name(key), _sql_name(value)
    query = (f"SELECT {k}, COUNT({v}) AS count, COALESCE(SUM({v}), 0) AS sum, MIN({v}) AS min, MAX({v}) AS max "
             f"FROM (SELECT {k}, CASE WHEN isnan({v}) THEN NULL ELSE {v} END AS {v} FROM shard) GROUP BY {k}")
    args = ["--format", "arrow", "--table", "shard={shard}", query]
    partials = map_shards(guest, shards, args, output="arrow", **options)
    return combine_partials(partials, key)
