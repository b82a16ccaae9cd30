"""famfs-run from Python: run untrusted WebAssembly analytics over famfs datasets, zero-copy.

- :class:`Runtime` compiles guests once (:meth:`Runtime.load`) and runs them
  (:meth:`Runtime.run` for a command, :meth:`Runtime.invoke` for a handler) with the GIL
  released, up to ``max_concurrency`` at once. Failures raise a :class:`GuestError` subclass
  (:class:`Timeout`, :class:`MemoryLimit`, :class:`Trap`, ...) carrying famfs-run's message.
- :class:`Famfs` makes, fills and reads famfs images (and dax devices), as ``famfsctl`` does;
  :func:`write_feather` publishes a pyarrow table or pandas DataFrame into one, aligned for
  zero-copy reading by guests.
- :mod:`famfs_run.ray` fans guests out over the hosts of a Ray cluster; :mod:`famfs_run.dask`
  makes Dask DataFrames of famfs files and runs guests per partition.

Asynchronous code runs guests in a thread pool::

    outcome = await asyncio.get_running_loop().run_in_executor(None, lambda: rt.run(prog, args))

or with :func:`run_async`, which does the same.
"""

from __future__ import annotations

import asyncio
import functools
import mmap
import os
import sys
from typing import Any, Optional, Union

from . import _native
from ._native import (
    LIMIT_OPTIONS,
    Cancelled,
    CompileError,
    ExitStatusError,
    FamfsError,
    FamfsRunError,
    FuelExhausted,
    GuestError,
    HandlerError,
    HostError,
    LinkError,
    LoadError,
    Manifest,
    ManifestError,
    MediaError,
    MemoryLimit,
    MissingExport,
    NeedsComponent,
    Outcome,
    Program,
    Runtime,
    SetupError,
    SourceError,
    StackOverflow,
    Timeout,
    Trap,
    WasiResources,
)

__version__ = _native.__version__

__all__ = [
    "Runtime",
    "Program",
    "Outcome",
    "Manifest",
    "Famfs",
    "write_feather",
    "run_async",
    "LIMIT_OPTIONS",
    "FamfsRunError",
    "GuestError",
    "CompileError",
    "LinkError",
    "NeedsComponent",
    "MissingExport",
    "SetupError",
    "Cancelled",
    "Timeout",
    "FuelExhausted",
    "MemoryLimit",
    "StackOverflow",
    "WasiResources",
    "MediaError",
    "Trap",
    "HandlerError",
    "HostError",
    "ExitStatusError",
    "LoadError",
    "ManifestError",
    "SourceError",
    "FamfsError",
]

# The `kind` of each failure, as `famfs-run --json` reports it (also set on each instance).
for _cls, _kind in [
    (CompileError, "compile"),
    (LinkError, "link"),
    (NeedsComponent, "needs-component"),
    (MissingExport, "missing-export"),
    (SetupError, "setup"),
    (Cancelled, "cancelled"),
    (Timeout, "timeout"),
    (FuelExhausted, "fuel-exhausted"),
    (MemoryLimit, "memory-limit"),
    (StackOverflow, "stack-overflow"),
    (WasiResources, "wasi-resources"),
    (MediaError, "media"),
    (Trap, "trap"),
    (HandlerError, "handler"),
    (HostError, "host"),
    (ExitStatusError, "exit-status"),
]:
    _cls.kind = _kind
del _cls, _kind

PathLike = Union[str, "os.PathLike[str]"]


async def run_async(runtime: Runtime, program: Any, args: Optional[list] = None, **options: Any) -> Outcome:
    """:meth:`Runtime.run` from asyncio code: the guest runs in the loop's default executor
    (the GIL is released meanwhile), so the event loop goes on."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(runtime.run, program, args, **options))


class Famfs(_native.Famfs):
    """A famfs file system on an image file or dax device.

    ``Famfs(path)`` opens an existing one read-only; ``Famfs.mkfs(path, size="1G")`` makes one
    (an image file is created or resized; ``force=True`` overwrites a famfs) and opens it. Reads
    (:meth:`ls`, :meth:`stat`, :meth:`cat`, :meth:`open`) see files other processes add;
    writes (:meth:`mkdir`, :meth:`cp`, :func:`write_feather`) need this host to be the master.
    """

    def open(self, path: str) -> memoryview:
        """A read-only memoryview over the file's bytes, mapped from the image (no copy).

        The mapping lives as long as the memoryview (and any object made from it). Files of one
        extent, which famfs makes by default, are mapped; the bytes of an interleaved file are
        not contiguous on the device and are read into memory instead.

        Like every memory map of a file, the view assumes the image is not cut short while it
        is mapped: reading a page past a truncated end raises SIGBUS and ends the process.
        """
        info = self.stat(path)
        if info["type"] != "file":
            raise IsADirectoryError(f"'{path}' is a directory")
        extents = info["extents"]
        if len(extents) != 1:
            return memoryview(self.cat(path)).toreadonly()
        offset, length = extents[0]
        # Extents start on 2 MiB boundaries and files own whole 2 MiB units (the slack after the
        # end is zeroed): map whole units, which device-dax requires of both ends of a mapping.
        # On a device aligned more coarsely (1 GiB), an extent that does not start on a unit
        # cannot be mapped: it is read instead.
        unit = max(self.map_align, 2 << 20)
        if offset % unit:
            return memoryview(self.cat(path)).toreadonly()
        with open(self.device, "rb") as f:
            mapped = mmap.mmap(f.fileno(), (length + unit - 1) // unit * unit, access=mmap.ACCESS_READ, offset=offset)
        return memoryview(mapped)[:length].toreadonly()

    def cp(self, src: PathLike, dest: str, *, recursive: bool = False, mode: Optional[int] = None,
           uid: Optional[int] = None, gid: Optional[int] = None) -> None:
        """Copies the host file ``src`` to ``dest`` in the famfs; with ``recursive``, a
        directory tree (directories made as needed, empty files skipped as famfs cannot hold
        them). Each file is flushed before it is logged, so an interrupted copy leaves only
        whole files."""
        src = os.fspath(src)
        if not os.path.isdir(src):
            super().cp(src, dest, mode=mode, uid=uid, gid=gid)
            return
        if not recursive:
            raise IsADirectoryError(f"{src} is a directory (use recursive=True to copy it)")
        dest = dest.strip("/")
        if dest:
            self.mkdir(dest, parents=True, uid=uid, gid=gid)
        for root, dirs, files in os.walk(src):
            # Links to directories are skipped (they could loop), as famfsctl cp does.
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
            rel = os.path.relpath(root, src)
            base = "/".join(p for p in (dest, "" if rel == "." else rel) if p)
            for d in dirs:
                self.mkdir(f"{base}/{d}" if base else d, parents=True, uid=uid, gid=gid)
            for name in sorted(files):
                host = os.path.join(root, name)
                if os.path.isfile(host) and os.path.getsize(host) > 0:
                    super().cp(host, f"{base}/{name}" if base else name, mode=mode, uid=uid, gid=gid)

    def write_feather(self, table: Any, path: str, **kwargs: Any) -> int:
        """Same as :func:`write_feather` (``write_feather(table, self, path)``)."""
        return write_feather(table, self, path, **kwargs)


def write_feather(table: Any, famfs: Union[Famfs, PathLike], path: str, *, mode: int = 0o644,
                  uid: Optional[int] = None, gid: Optional[int] = None, preserve_index: Optional[bool] = None) -> int:
    """Publishes a data frame into a famfs: ``table`` (a pyarrow Table or RecordBatchReader, a
    pandas DataFrame, or anything with ``__arrow_c_stream__``) is written as an uncompressed
    Arrow IPC file (Feather v2) with 64-byte aligned buffers, straight into the new famfs file
    ``path``: no temporary file, and no serialized copy in memory (pyarrow's buffers are read
    where they are; the batches of a ``RecordBatchReader`` are held in memory until the file is
    written, as its size must be known first). Guests read it zero-copy
    (``arrow-agg``, the ``sql`` guest); pandas reads it back with ``pandas.read_feather`` on a
    mount, or ``pyarrow.ipc.open_file(famfs.open(path))`` here. Returns the file's size.

    ``preserve_index`` is passed to ``pyarrow.Table.from_pandas`` for DataFrames.
    """
    if not isinstance(famfs, Famfs):
        famfs = Famfs(famfs)
    # Before the generic protocol: pandas DataFrames have __arrow_c_stream__ too (pandas 2.2+),
    # which would ignore preserve_index.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(table, pandas.DataFrame):
        import pyarrow

        table = pyarrow.Table.from_pandas(table, preserve_index=preserve_index)
    return famfs.write_arrow(table, path, mode=mode, uid=uid, gid=gid)
