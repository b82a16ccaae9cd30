"""What famfs_run.ray and famfs_run.dask share: running a guest over one famfs file (a shard) in
a worker process, and combining per-shard partial aggregates on the driver."""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc

import famfs_run

#: The environment variable that names a worker host's famfs device or image.
DEVICE_ENV = "FAMFS_DEVICE"

Output = str  # "arrow" | "csv" | "bytes" | "text" | "outcome"
ArgsSpec = Union[Sequence[str], Callable[[str], Sequence[str]]]
Guest = Union[str, "os.PathLike[str]", bytes]

_runtime: Optional[famfs_run.Runtime] = None


def worker_runtime() -> famfs_run.Runtime:
    """This process's runtime (one per worker process, made on first use), its compiled guests
    cached on disk in ``FAMFS_RUN_CACHE``, else in the user's cache directory (as the command
    line's: ``~/.cache/famfs-run/compiled``)."""
    global _runtime
    if _runtime is None:
        _runtime = famfs_run.Runtime()
    return _runtime


def shard_args(args: ArgsSpec, shard: str) -> List[str]:
    """The guest's arguments for ``shard``: ``"{shard}"`` replaced, or a function of it."""
    if callable(args):
        return [str(a) for a in args(shard)]
    return [str(a).replace("{shard}", shard) for a in args]


def device_here(device: Optional[str]) -> str:
    """``device``, else this host's ``FAMFS_DEVICE``; a ``SetupError`` naming the host if neither."""
    device = device or os.environ.get(DEVICE_ENV)
    if not device:
        raise famfs_run.SetupError(
            f"no famfs on this host ({socket.gethostname()}): pass device= or start the worker with {DEVICE_ENV} set"
        )
    return device


def run_shard(guest: Guest, shard: str, args: List[str], device: Optional[str], datasets: Optional[List[str]],
              output: Output, run_options: Dict[str, Any]) -> Any:
    """Runs ``guest`` over ``shard`` (granted only it, or ``datasets``) with this process's
    runtime and returns its output as ``output`` says. A failure raises the famfs-run exception,
    its message starting with ``shard NAME:`` and its ``shard`` attribute set."""
    device = device_here(device)
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
            "device": device,
        }
    raise ValueError(f"output={output!r}: use 'arrow', 'csv', 'bytes', 'text' or 'outcome'")


def combine_partials(partials: Sequence[pa.Table], key: str) -> pa.Table:
    """Reduces per-shard partial aggregates (columns ``key``, ``count``, ``sum``, ``min``,
    ``max``) into the aggregates of the whole: counts and sums added, min of mins, max of maxes,
    and ``mean`` = sum / count; sorted by ``key`` (a null key last).

    As pandas' ``groupby(key, dropna=False)[value].agg(["count", "sum", "mean", "min", "max"])``
    answers: null and NaN values are skipped, and a group without values (all of them null) has
    count 0, sum 0, and a null mean, min and max. The partials must say the same of such a group:
    sum 0 (arrow-agg's does; :func:`sql_partials_query` asks for it), min and max null."""
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


def arrow_agg_args(key: str, value: str) -> List[str]:
    """The ``arrow-agg`` guest's arguments for one shard's partial aggregates (Arrow output)."""
    return ["--format", "arrow", "{shard}", key, value]


def _sql_name(column: str) -> str:
    """A column's name as a SQL identifier (quoted: any name, any case)."""
    return '"' + column.replace('"', '""') + '"'


def sql_partials_query(key: str, value: str, table: str = "shard") -> str:
    """The SQL of one shard's partial aggregates, answering as pandas and arrow-agg do: NaN is
    skipped like null (SQL would count it, and propagate it into the sum, min and max), and the
    sum of no values is 0 (SQL's is NULL)."""
    k, v = _sql_name(key), _sql_name(value)
    return (f"SELECT {k}, COUNT({v}) AS count, COALESCE(SUM({v}), 0) AS sum, MIN({v}) AS min, MAX({v}) AS max "
            f"FROM (SELECT {k}, CASE WHEN isnan({v}) THEN NULL ELSE {v} END AS {v} FROM {table}) GROUP BY {k}")


def sql_guest_args(key: str, value: str) -> List[str]:
    """The ``sql`` guest's arguments for one shard's partial aggregates (Arrow output)."""
    return ["--format", "arrow", "--table", "shard={shard}", sql_partials_query(key, value)]
