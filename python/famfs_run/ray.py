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
from typing import Any, Dict, List, Optional, Sequence

import pyarrow as pa

import famfs_run
from famfs_run._shards import (  # noqa: F401  (DEVICE_ENV, worker_runtime, combine_partials: this module's API)
    DEVICE_ENV,
    ArgsSpec,
    Guest,
    Output,
    arrow_agg_args,
    combine_partials,
    run_shard,
    shard_args,
    sql_guest_args,
    worker_runtime,
)

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


def _run_one(guest: Any, shard: str, args: List[str], device: Optional[str], datasets: Optional[List[str]],
             output: Output, run_options: Dict[str, Any]) -> Any:
    result = run_shard(guest, shard, args, device, datasets, output, run_options)
    if output == "outcome":
        context = ray.get_runtime_context()
        result["node"] = context.get_node_id()
        result["resources"] = context.get_assigned_resources()
    return result


_remote_run = ray.remote(_run_one)


def famfs_nodes(resource: str = RESOURCE) -> List[str]:
    """The ids of the alive Ray nodes that advertise ``resource``, in a stable order."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) > 0)


def submit(guest: Guest, shards: Sequence[str], args: ArgsSpec = ("{shard}",), *,
           device: Optional[str] = None, datasets: Optional[List[str]] = None, output: Output = "arrow",
           resource: str = RESOURCE, share: float = TASK_SHARE, num_cpus: float = TASK_CPUS,
           resources: Optional[Dict[str, float]] = None, spread: bool = True, max_retries: int = 0,
           ray_options: Optional[Dict[str, Any]] = None, **run_options: Any) -> List["ray.ObjectRef"]:
    """Starts one Ray task per shard and returns their object references (in shard order).

    ``args`` are the guest's arguments, ``"{shard}"`` replaced by the shard's name (or a function
    of the shard). Each task is granted only its shard (or ``datasets``), on the famfs at
    ``device`` or the node's ``FAMFS_DEVICE``. ``output`` picks what each task returns: the
    guest's Arrow output as a ``pyarrow.Table`` (``"arrow"``), its CSV output parsed into one
    (``"csv"``), its stdout as ``bytes`` or ``"text"``, or a dict with the outcome, node, device
    and the Ray resources the task holds (``"outcome"``). ``run_options`` (``timeout``,
    ``max_memory``, ``fuel``, ``env``, ...) go to :meth:`famfs_run.Runtime.run`.

    What each task asks of Ray: ``num_cpus`` (default 1), ``share`` of ``resource`` (so it runs
    on famfs nodes only), and any other custom ``resources`` (``{"fabric-a": 1}``). With ``spread`` (the default) the shards go round-robin over the alive nodes
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
            guest_ref, shard, shard_args(args, shard), device, datasets, output, run_options))
    return refs


def map_shards(guest: Guest, shards: Sequence[str], args: ArgsSpec = ("{shard}",),
               **options: Any) -> List[Any]:
    """:func:`submit`, then waits for every task: the results in shard order."""
    return ray.get(submit(guest, shards, args, **options))


def group_by(guest: Guest, shards: Sequence[str], key: str, value: str, **options: Any) -> pa.Table:
    """A distributed group-by with the ``arrow-agg`` guest: per shard, in a Ray task on a famfs
    node, the count, sum, min and max of ``value`` by ``key`` (arrow-agg's Arrow output, a
    table in the task); combined on the driver (:func:`combine_partials`)."""
    partials = map_shards(guest, shards, arrow_agg_args(key, value), output="arrow", **options)
    return combine_partials(partials, key)


def sql_group_by(guest: Guest, shards: Sequence[str], key: str, value: str, **options: Any) -> pa.Table:
    """The same group-by as :func:`group_by`, each shard's partial aggregates computed by the
    ``sql`` guest (DataFusion) with a SQL query; the same answers, all-null groups included."""
    partials = map_shards(guest, shards, sql_guest_args(key, value), output="arrow", **options)
    return combine_partials(partials, key)
