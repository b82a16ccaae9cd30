"""famfs-run on Dask: Dask DataFrames whose partitions are famfs files, and guests run per
partition on the workers.

Every worker host maps the same famfs (on a CXL fabric, the same shared memory) and names it in
``FAMFS_DEVICE`` (or each call passes ``device=``). A partition is one famfs file: it is read
where the task runs, from the famfs's own pages, and only results cross the network::

    import famfs_run.dask as fd
    from distributed import Client

    client = Client("scheduler:8786")
    shards = [f"shards/part-{i:02}.arrow" for i in range(16)]
    df = fd.read_arrow(shards)                              # a dask DataFrame, 16 partitions
    df.groupby("k")["v"].mean().compute()                   # pandas on the workers
    fd.group_by("arrow-agg", shards, "k", "v")              # the same in guests, reduced here
    fd.sql_group_by("sql", shards, "k", "v")                # each shard by the SQL guest
    fd.run_guest("sql", shards, ["--format", "arrow", "--table", "t={shard}", "SELECT ... FROM t"])

:func:`read_arrow` maps each Arrow IPC file with :meth:`famfs_run.Famfs.open` and hands pandas
Arrow-backed columns over those pages (``pd.ArrowDtype``: no copy of the file into the worker's
memory; ``arrow_dtypes=False`` converts to NumPy dtypes, which copies). :func:`run_guest` runs a
guest over each file in the sandbox (zero-copy inside the guest) and makes a partition of its
Arrow output. Compiled guests are cached per host as for :mod:`famfs_run.ray`.

Dask and distributed are optional: ``pip install 'famfs_run[dask]'``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import pyarrow as pa

import famfs_run
from famfs_run._shards import (
    ArgsSpec,
    Guest,
    arrow_agg_args,
    combine_partials,
    device_here,
    run_shard,
    shard_args,
    sql_guest_args,
)

try:
    import dask
    import dask.dataframe as dd
    import pandas as pd
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("famfs_run.dask needs Dask: pip install 'famfs_run[dask]' (or pip install 'dask[dataframe]')") from e

# The famfs of this worker process, opened once per device (opening replays the log).
_famfs: dict = {}


def _open_famfs(device: Optional[str]) -> famfs_run.Famfs:
    device = device_here(device)
    if device not in _famfs:
        _famfs[device] = famfs_run.Famfs(device)
    return _famfs[device]


def _to_pandas(table: pa.Table, arrow_dtypes: bool) -> pd.DataFrame:
    if arrow_dtypes:
        # Arrow-backed columns: the DataFrame's buffers are the table's (here, the famfs pages).
        return table.to_pandas(types_mapper=pd.ArrowDtype)
    return table.to_pandas()


def _read_table(path: str, device: Optional[str], columns: Optional[List[str]]) -> pa.Table:
    view = _open_famfs(device).open(path)
    try:
        reader = pa.ipc.open_file(pa.py_buffer(view))
    except pa.ArrowInvalid as e:
        raise famfs_run.FamfsError(f"{path} is not an Arrow IPC file ({e}): read_arrow reads Arrow IPC (Feather v2) files") from e
    table = reader.read_all()
    return table.select(columns) if columns is not None else table


def _read_partition(path: str, device: Optional[str], columns: Optional[List[str]], arrow_dtypes: bool) -> pd.DataFrame:
    return _to_pandas(_read_table(path, device, columns), arrow_dtypes)


def read_arrow(paths: Sequence[str], *, device: Optional[str] = None, columns: Optional[List[str]] = None,
               arrow_dtypes: bool = True) -> "dd.DataFrame":
    """A Dask DataFrame with one partition per famfs Arrow IPC file in ``paths`` (in order), read
    on the workers from the famfs at ``device`` or their host's ``FAMFS_DEVICE``. The schema
    comes from the first file, read here (so this host needs the famfs too, or ``device=``);
    every file must have it. ``columns`` selects columns."""
    paths = list(paths)
    if not paths:
        raise ValueError("read_arrow needs at least one famfs file")
    meta = _to_pandas(_read_table(paths[0], device, columns).schema.empty_table(), arrow_dtypes)
    return dd.from_map(_read_partition, paths, device=device, columns=columns, arrow_dtypes=arrow_dtypes,
                       meta=meta, divisions=None, label="famfs-read-arrow", enforce_metadata=True)


def _guest_partition(shard: str, guest: Guest, guest_args: ArgsSpec, device: Optional[str], datasets: Optional[List[str]],
                     arrow_dtypes: bool, run_options: dict) -> pd.DataFrame:
    table = run_shard(guest, shard, shard_args(guest_args, shard), device, datasets, "arrow", run_options)
    return _to_pandas(table, arrow_dtypes)


def run_guest(guest: Guest, shards: Sequence[str], args: ArgsSpec = ("{shard}",), *, device: Optional[str] = None,
              datasets: Optional[List[str]] = None, meta: Any = None, arrow_dtypes: bool = True,
              **run_options: Any) -> "dd.DataFrame":
    """A Dask DataFrame whose partition ``i`` is ``guest``'s Arrow output over ``shards[i]``
    (``args`` with ``"{shard}"`` replaced, or a function of the shard), run on a worker, in the
    sandbox, granted only that shard (or ``datasets``). ``run_options`` (``timeout``,
    ``max_memory``, ...) go to :meth:`famfs_run.Runtime.run`. The guest is a name (each worker's
    installed guest), a path every worker has, or bytes (sent with every task: prefer a name).
    ``meta`` (an empty DataFrame of the
    output's columns) is found by running the guest over the first shard here unless given.

    A partition whose guest fails raises the famfs-run exception (``famfs_run.Timeout``,
    ``famfs_run.ExitStatusError``, ...) from ``compute()``, its message starting with
    ``shard NAME:``. Dask does not retry it."""
    shards = list(shards)
    if not shards:
        raise ValueError("run_guest needs at least one shard")
    if meta is None:
        meta = _guest_partition(shards[0], guest, args, device, datasets, arrow_dtypes, run_options).iloc[:0]
    # (from_map's own `args` are extra positional arguments: the guest's go by another name.)
    return dd.from_map(_guest_partition, shards, guest=guest, guest_args=args, device=device, datasets=datasets,
                       arrow_dtypes=arrow_dtypes, run_options=run_options, meta=meta, divisions=None,
                       label="famfs-run-guest", enforce_metadata=False)


def _partials(guest: Guest, shards: Sequence[str], args: ArgsSpec, device: Optional[str],
              run_options: dict) -> List[pa.Table]:
    """Each shard's Arrow output, computed on the workers, as tables on the driver."""
    # A guest given as bytes is one object of the graph, not a copy per task.
    program = dask.delayed(guest, traverse=False) if isinstance(guest, bytes) else guest
    tasks = [dask.delayed(run_shard, pure=False)(program, s, shard_args(args, s), device, None, "arrow", run_options)
             for s in shards]
    return list(dask.compute(*tasks))


def group_by(guest: Guest, shards: Sequence[str], key: str, value: str, *, device: Optional[str] = None,
             **run_options: Any) -> pa.Table:
    """A distributed group-by with the ``arrow-agg`` guest: per shard, on a worker, the count,
    sum, min and max of ``value`` by ``key``; combined here into those and the mean (as
    :func:`famfs_run.ray.group_by`, and as pandas' ``groupby(key, dropna=False)`` answers)."""
    return combine_partials(_partials(guest, shards, arrow_agg_args(key, value), device, run_options), key)


def sql_group_by(guest: Guest, shards: Sequence[str], key: str, value: str, *, device: Optional[str] = None,
                 **run_options: Any) -> pa.Table:
    """The same group-by as :func:`group_by`, each shard's partial aggregates computed by the
    ``sql`` guest (DataFusion); the same answers."""
    return combine_partials(_partials(guest, shards, sql_guest_args(key, value), device, run_options), key)
