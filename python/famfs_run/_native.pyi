"""Type hints for famfs_run._native, the Rust extension (see famfs_run/__init__.py)."""

import os
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union

# Stubs are never imported at run time: typing_extensions (Unpack is in typing from 3.11 only)
# costs nothing here and keeps the stubs right for every Python the package supports (3.9+).
from typing_extensions import Unpack

_Path = Union[str, "os.PathLike[str]"]
_Size = Union[int, str]
_Duration = Union[float, int, str]

__version__: str

LIMIT_OPTIONS: Tuple[str, ...]
"""The limit keywords of Runtime.run and Runtime.invoke (Runtime() takes all but fuel): the same
list as famfs-run's limit flags and a manifest's [limits] keys. None leaves a limit as it is."""

class RuntimeLimits(TypedDict, total=False):
    """The limits Runtime() takes as every invocation's defaults."""

    timeout: Optional[_Duration]
    max_memory: Optional[_Size]
    max_mappings: Optional[int]
    max_kernel_mappings: Optional[int]
    max_open_datasets: Optional[int]
    max_wasi_resources: Optional[int]
    max_output: Optional[_Size]
    map_technique: Optional[Literal["private", "shared", "auto"]]

class Limits(RuntimeLimits, total=False):
    """The limits of one run or invoke: Runtime()'s, and a fuel budget (which needs
    Runtime(fuel=True))."""

    fuel: Optional[int]

def _read_arrow_ipc(data: bytes) -> Any:
    """What Outcome.arrow() does with a guest's output: a validated, zero-copy pyarrow.Table
    (for python/fuzz/arrow_outcome.py)."""

class Program:
    """A compiled guest (Runtime.load)."""

    @property
    def kind(self) -> str:
        """"core-module", "component" or "adapted-module"."""
    @property
    def sha256(self) -> str: ...
    @property
    def name(self) -> str: ...

class Outcome:
    """What one invocation came to."""

    @property
    def exit_code(self) -> int: ...
    @property
    def ok(self) -> bool: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def reply(self) -> Optional[bytes]: ...
    @property
    def metrics(self) -> Dict[str, Any]:
        """wall_ms, instantiate_ms, run_ms, fuel_used, bytes_mapped, bytes_copied, peak_memory, output_dropped."""
    def check(self) -> "Outcome":
        """self if the exit code is 0 and no output was dropped; else raises ExitStatusError, or
        GuestError (kind "output-dropped")."""
    def arrow(self) -> Any:
        """The Arrow IPC output as a pyarrow.Table, without a copy."""

class Manifest:
    """A function manifest (TOML)."""

    def __init__(self, path: _Path) -> None: ...
    @staticmethod
    def from_str(text: str, path: Optional[_Path] = None) -> "Manifest": ...
    @property
    def module(self) -> str: ...
    @property
    def is_handler(self) -> bool: ...
    @property
    def path(self) -> str: ...

class Runtime:
    """Runs guests; share one per process."""

    def __init__(
        self,
        *,
        cache_dir: Union[_Path, bool, None] = True,
        max_concurrency: Optional[int] = None,
        fuel: bool = False,
        **limits: Unpack[RuntimeLimits],
    ) -> None: ...
    def load(self, guest: Union[_Path, bytes], *, component: bool = False, sha256: Optional[str] = None) -> Program: ...
    def run(
        self,
        program: Union[Program, _Path, bytes],
        args: Optional[Sequence[str]] = None,
        *,
        device: Optional[_Path] = None,
        mount: Optional[_Path] = None,
        datasets: Optional[Sequence[str]] = None,
        dirs: Optional[Mapping[str, _Path]] = None,
        env: Optional[Mapping[str, str]] = None,
        **limits: Unpack[Limits],
    ) -> Outcome: ...
    def invoke(
        self,
        program: Union[Program, _Path, bytes],
        input: Union[bytes, bytearray, str],
        *,
        device: Optional[_Path] = None,
        mount: Optional[_Path] = None,
        datasets: Optional[Sequence[str]] = None,
        dirs: Optional[Mapping[str, _Path]] = None,
        env: Optional[Mapping[str, str]] = None,
        **limits: Unpack[Limits],
    ) -> bytes: ...
    def run_manifest(
        self, manifest: Manifest, args: Optional[Sequence[str]] = None, *, input: Union[bytes, str, None] = None
    ) -> Outcome: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def available_slots(self) -> int: ...
    @property
    def load_stats(self) -> Dict[str, int]: ...
    @property
    def cache_dir(self) -> Optional[str]: ...

class Famfs:
    """A famfs on an image file or dax device."""

    def __init__(self, device: _Path) -> None: ...
    @classmethod
    def mkfs(
        cls,
        device: _Path,
        *,
        size: Optional[_Size] = None,
        log_len: Optional[_Size] = None,
        format_version: int = 48,
        force: bool = False,
    ) -> "Famfs":
        """Makes a famfs on ``device`` and opens it as an instance of ``cls``."""
    @property
    def device(self) -> str: ...
    @property
    def map_align(self) -> int:
        """What offsets and lengths of a memory map of the device must be multiples of."""
    def ls(self, path: str = "/") -> List[Dict[str, Any]]: ...
    def stat(self, path: str) -> Dict[str, Any]: ...
    def cat(self, path: str) -> bytes: ...
    def mkdir(
        self, path: str, *, parents: bool = False, mode: int = 0o755, uid: Optional[int] = None, gid: Optional[int] = None
    ) -> None: ...
    def cp(
        self, src: _Path, dest: str, *, mode: Optional[int] = None, uid: Optional[int] = None, gid: Optional[int] = None
    ) -> None: ...
    def fsck(self) -> Dict[str, Any]: ...
    def write_arrow(
        self, table: Any, path: str, *, mode: int = 0o644, uid: Optional[int] = None, gid: Optional[int] = None
    ) -> int: ...

class FamfsRunError(Exception): ...
class GuestError(FamfsRunError):
    kind: str
    stdout: bytes
    stderr: bytes
    metrics: Dict[str, Any]
class CompileError(GuestError): ...
class LinkError(GuestError): ...
class NeedsComponent(GuestError): ...
class MissingExport(GuestError): ...
class SetupError(GuestError): ...
class Cancelled(GuestError): ...
class Timeout(GuestError): ...
class FuelExhausted(GuestError): ...
class MemoryLimit(GuestError): ...
class StackOverflow(GuestError): ...
class WasiResources(GuestError): ...
class MediaError(GuestError): ...
class Trap(GuestError):
    backtrace: str
class HandlerError(GuestError): ...
class HostError(GuestError): ...
class ExitStatusError(GuestError):
    exit_code: int
class LoadError(FamfsRunError): ...
class ManifestError(FamfsRunError): ...
class SourceError(FamfsRunError): ...
class FamfsError(FamfsRunError): ...
