"""famfs_run.Runtime: guests run over famfs datasets from Python, fail with exceptions by kind
(each carrying the message famfs-run prints), run in parallel with the GIL released, and hand
Arrow output to pyarrow without a copy."""

import asyncio
import pathlib
import subprocess
import sys
import signal
import threading
import time

import pyarrow as pa
import pytest

import famfs_run
from conftest import guest, tool

# A core module whose `_start` executes `unreachable`.
TRAP_MODULE = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x0a\x01\x06_start\0\0\x0a\x05\x01\x03\0\x00\x0b"


@pytest.fixture(scope="module")
def rt():
    return famfs_run.Runtime(fuel=True)


def cli_error(*args):
    """What `famfs-run` prints for a failing run: its one-line message, without the prefix."""
    r = subprocess.run([str(tool("famfs-run")), *map(str, args)], capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if line.startswith("famfs-run: error: ")]
    assert lines, r.stderr
    return lines[-1].removeprefix("famfs-run: error: ")


def test_run_captures_output_and_metrics(rt, image, tmp_path):
    fs = famfs_run.Famfs(image)
    src = tmp_path / "words.txt"
    src.write_text("one two three\nfour five\n")
    fs.cp(src, "words.txt")
    program = rt.load(guest("wc"))
    assert program.kind == "core-module" and len(program.sha256) == 64 and program.name == "wc.wasm"
    assert rt.load(guest("wc")).sha256 == program.sha256
    out = rt.run(program, ["words.txt"], device=image, datasets=["words.txt"])
    assert out.ok and out.exit_code == 0 and out.check() is out
    assert out.text.split()[:3] == ["2", "5", "24"], out.text
    assert out.metrics["bytes_mapped"] >= 24 and out.metrics["wall_ms"] > 0
    # Not granted: the guest cannot open it.
    denied = rt.run(program, ["words.txt"], device=image, datasets=[])
    assert not denied.ok and b"not" in denied.stderr.lower()
    with pytest.raises(famfs_run.ExitStatusError, match=r"wc.wasm exited with status \d+") as e:
        denied.check()
    assert e.value.exit_code == denied.exit_code


def test_failures_raise_by_kind_with_the_cli_message(rt, tmp_path):
    adversary = guest("adversary")
    with pytest.raises(famfs_run.Timeout) as e:
        rt.run(adversary, ["spin"], timeout=0.2)
    assert str(e.value) == cli_error("--timeout", "200ms", adversary, "spin")
    assert e.value.kind == "timeout" and isinstance(e.value, famfs_run.GuestError)
    assert e.value.metrics["wall_ms"] >= 200

    with pytest.raises(famfs_run.MemoryLimit) as e:
        rt.run(adversary, ["memory-bomb"], max_memory="64M")
    # The CLI's message, with the keyword for its flag.
    cli = cli_error("--max-memory", "64M", adversary, "memory-bomb")
    assert str(e.value) == cli.replace("raise --max-memory", "raise max_memory="), cli

    with pytest.raises(famfs_run.FuelExhausted, match="ran out of fuel"):
        rt.run(adversary, ["spin"], fuel=100_000)
    with pytest.raises(famfs_run.StackOverflow):
        rt.run(adversary, ["recurse"])

    trap = tmp_path / "trap.wasm"
    trap.write_bytes(TRAP_MODULE)
    with pytest.raises(famfs_run.Trap) as e:
        rt.run(TRAP_MODULE)
    assert str(e.value) == cli_error("--fuel", "1000000", trap)  # the same engine: fuel counted
    assert "unreachable" in str(e.value) and e.value.kind == "trap"

    with pytest.raises(famfs_run.CompileError):
        rt.load(b"not wasm")
    with pytest.raises(famfs_run.LoadError, match="cannot read the guest"):
        rt.load(tmp_path / "missing.wasm")
    with pytest.raises(famfs_run.LoadError, match="refusing to run it"):
        rt.load(trap, sha256="0" * 64)
    with pytest.raises(famfs_run.SourceError, match="cannot open the famfs"):
        rt.run(adversary, ["list"], device=tmp_path / "no.img", datasets=["/"])
    with pytest.raises(ValueError, match="needs a source"):
        rt.run(adversary, ["list"], datasets=["x"])
    with pytest.raises(ValueError, match="FAMFS_RUN_MAX_MEMORY"):
        rt.run(adversary, ["list"], env={"FAMFS_RUN_MAX_MEMORY": "1"})


def test_handlers_reply_and_fail_with_handler_error(rt, image, tmp_path):
    words = bytes(range(1, 9)) + bytes([2])  # one u64 word, then a partial one
    handler = rt.load(guest("sum_handler"), component=True)
    assert handler.kind == "adapted-module"
    want = int.from_bytes(bytes(range(1, 9)), "little") + 2
    assert rt.invoke(handler, words) == str(want).encode()
    src = tmp_path / "d"
    src.write_bytes(words)
    famfs_run.Famfs(image).cp(src, "d")
    assert rt.invoke(handler, "map:d", device=image, datasets=["d"]) == str(want).encode()
    with pytest.raises(famfs_run.HandlerError, match="handler returned an error: missing"):
        rt.invoke(handler, "map:missing", device=image, datasets=["d"])
    with pytest.raises(famfs_run.NeedsComponent, match="component=True"):
        rt.invoke(rt.load(guest("sum_handler")), b"")


def test_outcome_arrow_is_zero_copy(rt):
    out = rt.run(guest("arrow-gen"), ["-", "200000"], max_output="256M").check()
    before = pa.total_allocated_bytes()
    table = out.arrow()
    assert table.num_rows == 200_000 and "celsius" in table.column_names
    # The table's buffers are the guest's output: pyarrow allocated nothing for them.
    assert table.nbytes > 5_000_000
    assert pa.total_allocated_bytes() - before < 1_000_000
    del out  # the table keeps the output alive
    assert table.column("celsius").null_count >= 0 and table.slice(199_999).num_rows == 1


def test_outcome_arrow_refuses_malformed_ipc(rt, image, tmp_path):
    # Issue 21, item 8: a guest's Arrow IPC was handed to pyarrow as it came. pyarrow checks the
    # messages, not the data, so an offset past its buffer went into the table, and reading that
    # value read out of bounds (the host segfaulted). It is a ValueError now.
    import struct

    sink = pa.BufferOutputStream()
    good = pa.table({"s": ["a", "bb", "ccc"]})
    with pa.ipc.new_stream(sink, good.schema) as w:
        w.write_table(good)
    raw = bytearray(sink.getvalue().to_pybytes())
    offsets = raw.index(struct.pack("<4i", 0, 1, 3, 6))
    raw[offsets + 4 : offsets + 8] = struct.pack("<i", 1 << 30)  # "a" now ends 1 GiB past the data
    src = tmp_path / "bad.arrow"
    src.write_bytes(bytes(raw))
    famfs_run.Famfs(image).cp(src, "bad.arrow")
    out = rt.run(guest("adversary"), ["print", "bad.arrow"], device=image, datasets=["bad.arrow"]).check()
    assert out.stdout == bytes(raw)
    with pytest.raises(ValueError, match="adversary.* is not valid Arrow IPC"):
        out.arrow()
    # The same bytes unharmed are a table.
    src.write_bytes(sink.getvalue().to_pybytes())
    famfs_run.Famfs(image).cp(src, "good.arrow")
    out = rt.run(guest("adversary"), ["print", "good.arrow"], device=image, datasets=["good.arrow"]).check()
    assert out.arrow().column("s").to_pylist() == ["a", "bb", "ccc"]


def test_manifest_runs_as_the_cli_would(rt, image, tmp_path):
    src = tmp_path / "words.txt"
    src.write_text("a b c\n")
    famfs_run.Famfs(image).cp(src, "words.txt")
    manifest = tmp_path / "wc.toml"
    manifest.write_text(
        f'[module]\npath = "{guest("wc")}"\n[source]\ndevice = "{image}"\ndatasets = ["words.txt"]\n'
        '[limits]\ntimeout = "10s"\n'
    )
    m = famfs_run.Manifest(manifest)
    assert not m.is_handler and m.module == guest("wc")
    out = rt.run_manifest(m, ["words.txt"]).check()
    assert out.text.split()[:3] == ["1", "3", "6"]
    with pytest.raises(famfs_run.ManifestError, match="unknown field `limit`"):
        famfs_run.Manifest.from_str('[module]\npath = "x.wasm"\n[limit]\ntimeout = 3\n')
    with pytest.raises(famfs_run.ManifestError, match="limits.timeout_s is not a limit; the limits are timeout,"):
        famfs_run.Manifest.from_str('[module]\npath = "x.wasm"\n[limits]\ntimeout_s = 3\n')
    with pytest.raises(ValueError, match="input= is for handlers"):
        rt.run_manifest(m, input=b"x")


def test_threads_run_guests_in_parallel_up_to_max_concurrency():
    rt = famfs_run.Runtime(max_concurrency=2)
    adversary = rt.load(guest("adversary"))
    runs = []  # (start, end) of each guest's own run, on the host's clock

    def spin():
        try:
            rt.run(adversary, ["spin"], timeout=0.5)
        except famfs_run.Timeout as e:
            end = time.monotonic()
            runs.append((end - e.metrics["wall_ms"] / 1000, end))

    ticks = 0
    threads = [threading.Thread(target=spin) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        ticks += 1  # Python code runs meanwhile: the GIL is released while guests run
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert len(runs) == 4 and ticks > 50
    # At most two at once, and two did run at once. A thread notes its end only once it holds
    # the GIL again, after the guest's slot was freed, later still on loaded cores: ends count
    # 200 ms early (of runs of 500 ms; without the limit all four would overlap anyway).
    events = sorted([(s, 1) for s, _ in runs] + [(e - 0.2, -1) for _, e in runs], key=lambda x: (x[0], x[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 2, runs
    assert rt.available_slots == 2


def test_asyncio_runs_guests_without_blocking_the_loop():
    rt = famfs_run.Runtime()
    adversary = rt.load(guest("adversary"))

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        results = await asyncio.gather(
            *[famfs_run.run_async(rt, adversary, ["spin"], timeout=0.3) for _ in range(2)], return_exceptions=True
        )
        tick.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert all(isinstance(r, famfs_run.Timeout) for r in results), results
    assert ticks > 10


def test_a_library_that_takes_the_fault_signals_does_not_turn_traps_into_crashes():
    # Ray's core worker (ray.init in a process that already made a runtime), JVMs and glog
    # install their own SIGSEGV/SIGILL/SIGBUS handlers; a guest's trap then used to kill the
    # process. Python's own signal module stands in for them here, in a child process.
    code = f"""
import signal, famfs_run
rt = famfs_run.Runtime()
for s in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE):
    signal.signal(s, lambda *a: print("foreign handler ran", flush=True))
try:
    rt.run({TRAP_MODULE!r})
except famfs_run.Trap as e:
    print("trap:", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.startswith("trap: the guest trapped: wasm trap: unreachable") or "unreachable" in r.stdout, r.stdout
    assert "foreign handler ran" not in r.stdout


def test_dirs_serve_famfs_directories_and_mount_subdirectories(rt, image, tmp_path):
    fs = famfs_run.Famfs(image)
    fs.mkdir("logs")
    src = tmp_path / "a.log"
    src.write_text("hello famfs\n")
    fs.cp(src, "logs/a.log")
    probe = guest("fs-probe")
    # From the image itself: no mount (the guest is adapted into a component for this).
    out = rt.run(probe, ["cat", "/data/a.log"], device=image, dirs={"/data": "logs"}).check()
    assert out.stdout == b"hello famfs\n"
    # From a mount: a directory inside it, never outside.
    mount = tmp_path / "mnt"
    (mount / "logs").mkdir(parents=True)
    (mount / "logs" / "b.log").write_text("on a mount\n")
    out = rt.run(probe, ["cat", "/data/b.log"], mount=mount, dirs={"/data": "logs"}).check()
    assert out.stdout == b"on a mount\n"
    with pytest.raises(ValueError, match=r"must stay inside the mount"):
        rt.run(probe, ["ls", "/data"], mount=mount, dirs={"/data": "../.."})
    with pytest.raises(ValueError, match="is not a directory"):
        rt.run(probe, ["ls", "/data"], mount=mount, dirs={"/data": "nothing"})


# For a child Python that a test interrupts: Python leaves SIGINT ignored when it starts
# ignored (a background job of a script); handle it, as an interactive Python does, whatever the
# test runner inherited.
SIGINT_AS_INTERACTIVE = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)"


def test_ctrl_c_interrupts_a_running_guest():
    # A guest that would spin forever; SIGINT (Ctrl-C) to the Python process cancels it and
    # raises KeyboardInterrupt, within a fraction of a second.
    code = f"""
import famfs_run, sys
{SIGINT_AS_INTERACTIVE}
rt = famfs_run.Runtime()
program = rt.load({str(guest("adversary"))!r})
print("loaded", flush=True)
try:
    rt.run(program, ["spin"])
except KeyboardInterrupt:
    # Raised at once; the cancelled guest gives its slot back within an epoch tick or so.
    import time
    deadline = time.monotonic() + 5
    while rt.available_slots != rt.max_concurrency and time.monotonic() < deadline:
        time.sleep(0.01)
    print("interrupted", rt.available_slots == rt.max_concurrency, flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "loaded"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert out.strip() == "interrupted True", (out, err)
    assert p.returncode == 0


def test_misuse_is_a_clear_error(tmp_path):
    plain = famfs_run.Runtime()
    adversary = guest("adversary")
    with pytest.raises(ValueError, match=r"Runtime\(fuel=True\)"):
        plain.run(adversary, ["list"], fuel=1000)
    other = famfs_run.Runtime().load(adversary)
    with pytest.raises(ValueError, match="loaded by another Runtime"):
        plain.run(other, ["list"])
    # Output past max_output is dropped; check() and arrow() say so instead of using a part.
    out = plain.run(guest("arrow-gen"), ["-", "100000"], max_output="64K")
    assert out.metrics["output_dropped"] > 0
    with pytest.raises(famfs_run.GuestError, match="raise max_output=") as e:
        out.check()
    assert e.value.kind == "output-dropped"
    with pytest.raises(famfs_run.GuestError, match="bytes of its output were dropped"):
        out.arrow()


def _stub_limit_keys(name):
    """The keys of the TypedDict `name` in _native.pyi, with those of its bases there."""
    import ast

    stub = ast.parse((pathlib.Path(__file__).parent.parent / "famfs_run" / "_native.pyi").read_text())
    classes = {c.name: c for c in stub.body if isinstance(c, ast.ClassDef)}
    cls = classes[name]
    keys = {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            keys |= _stub_limit_keys(base.id)
    return keys


def test_limit_keywords_are_the_runtimes_one_list(image, tmp_path):
    # One list: famfs-run's limit flags, a manifest's [limits] keys, these keywords.
    assert "max_wasi_resources" in famfs_run.LIMIT_OPTIONS and "fuel" in famfs_run.LIMIT_OPTIONS
    assert _stub_limit_keys("Limits") == set(famfs_run.LIMIT_OPTIONS)
    # Runtime(fuel=True) turns counting on: a budget is per call.
    assert _stub_limit_keys("RuntimeLimits") == set(famfs_run.LIMIT_OPTIONS) - {"fuel"}
    with pytest.raises(TypeError, match=r"Runtime\(fuel=\) is True or False"):
        famfs_run.Runtime(fuel=1000)
    rt = famfs_run.Runtime(cache_dir=None)
    wc = guest("wc")
    # An unknown keyword is a TypeError naming it and the ones there are.
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'timout'; the limits are timeout=, fuel="):
        rt.run(wc, [], timout=1)
    with pytest.raises(TypeError, match="'max_outptu'"):
        famfs_run.Runtime(max_outptu="1M")
    with pytest.raises(TypeError, match="'component'"):
        rt.invoke(wc, b"", component=True)
    # Values are read as the command line's: wrong types and bad values name the keyword.
    with pytest.raises(TypeError, match="max_output= must be a number of bytes .*, not a bool"):
        rt.run(wc, [], max_output=True)
    with pytest.raises(TypeError, match="max_mappings= must be a whole number, not a list"):
        rt.run(wc, [], max_mappings=[1])
    with pytest.raises(ValueError, match="max_wasi_resources= must be at least 1"):
        famfs_run.Runtime(max_wasi_resources=0)
    with pytest.raises(ValueError, match="map_technique=: 'dax' is not a map technique"):
        rt.run(wc, [], map_technique="dax")
    assert rt.run(wc, [], timeout=None, max_memory=None).stderr.startswith(b"usage: wc")
    # Limits Python could not set before take effect: max_open_datasets (per run, and as the
    # runtime's default), max_wasi_resources.
    src = tmp_path / "d"
    src.write_bytes(b"data")
    famfs_run.Famfs(image).cp(src, "d")
    adversary = guest("adversary")
    opened = rt.run(adversary, ["open-many", "d", "100"], device=image, datasets=["d"], max_open_datasets=10)
    assert opened.text.startswith("opened 10 "), opened.text
    capped = famfs_run.Runtime(cache_dir=None, max_open_datasets="7")
    opened = capped.run(adversary, ["open-many", "d", "100"], device=image, datasets=["d"])
    assert opened.text.startswith("opened 7 "), opened.text
    mount = tmp_path / "mnt"
    (mount / "data").mkdir(parents=True)
    (mount / "data" / "f").write_text("x")
    with pytest.raises(famfs_run.WasiResources, match="max_wasi_resources"):
        rt.run(adversary, ["wasi-open-many", "/d/f", "100000"], mount=mount, dirs={"/d": "data"},
               max_wasi_resources=30)


def test_ctrl_c_interrupts_a_guest_waiting_for_a_slot():
    # The only slot is held by a guest that spins for 10 s; the second run waits for it, and
    # Ctrl-C ends that wait at once instead of after the first guest.
    code = f"""
import famfs_run, threading, time
{SIGINT_AS_INTERACTIVE}
rt = famfs_run.Runtime(max_concurrency=1)
program = rt.load({str(guest("adversary"))!r})
def hold():
    try:
        rt.run(program, ["spin"], timeout=10)
    except famfs_run.Timeout:
        pass
threading.Thread(target=hold, daemon=True).start()
while rt.available_slots:
    time.sleep(0.01)
print("queued", flush=True)
t0 = time.monotonic()
try:
    rt.run(program, ["spin"])
except KeyboardInterrupt:
    print("interrupted after", round(time.monotonic() - t0, 1), flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "queued"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        # Bounded: a child that missed the signal fails the test instead of hanging the suite.
        line = p.communicate(timeout=20)[0].split()
    finally:
        p.kill()
        p.communicate()
    assert line[:2] == ["interrupted", "after"], line
    assert float(line[2]) < 5, line  # long before the first guest's 10 s


def test_compiled_guests_are_kept_in_the_users_cache_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("FAMFS_RUN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "famfs-run" / "compiled"
    first = famfs_run.Runtime()
    assert pathlib.Path(first.cache_dir) == cache
    first.load(guest("wc"))
    assert first.load_stats["compiled"] == 1
    assert len(list(cache.glob("*.cwasm"))) == 1
    # Another runtime (another process, as well) loads it instead of compiling it.
    second = famfs_run.Runtime()
    second.load(guest("wc"))
    assert second.load_stats["compiled"] == 0 and second.load_stats["from_disk_cache"] == 1
    # None (or False): no disk cache; a path: that one.
    for off in (None, False):
        rt = famfs_run.Runtime(cache_dir=off)
        assert rt.cache_dir is None
        rt.load(guest("wc"))
        assert rt.load_stats["compiled"] == 1
    mine = famfs_run.Runtime(cache_dir=tmp_path / "mine")
    mine.load(guest("wc"))
    assert len(list((tmp_path / "mine").glob("*.cwasm"))) == 1
    # FAMFS_RUN_CACHE stands in for the user's, as for famfs-run.
    monkeypatch.setenv("FAMFS_RUN_CACHE", str(tmp_path / "mine"))
    from_env = famfs_run.Runtime()
    from_env.load(guest("wc"))
    assert from_env.load_stats["from_disk_cache"] == 1
    monkeypatch.delenv("FAMFS_RUN_CACHE")
    # A default directory others may write is skipped (a run needs no cache); a given one is refused.
    cache.chmod(0o777)
    assert famfs_run.Runtime().cache_dir is None
    with pytest.raises(famfs_run.SetupError, match="writable by group or others"):
        famfs_run.Runtime(cache_dir=cache)


def test_bundled_guests_are_loaded_by_name(tmp_path, monkeypatch):
    installed = tmp_path / "data" / "famfs-run" / "guests"
    installed.mkdir(parents=True)
    (installed / "wc.wasm").write_bytes(guest("wc").read_bytes())
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("FAMFS_RUN_GUEST_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    rt = famfs_run.Runtime(cache_dir=None)
    out = rt.run("wc", [])
    assert out.stderr.startswith(b"usage: wc"), out.stderr
    assert rt.load("wc").name == "wc"
    with pytest.raises(famfs_run.LoadError, match=r"no guest named sql in .*: build the bundled guests with `bash scripts/build-guests.sh`"):
        rt.load("sql")
