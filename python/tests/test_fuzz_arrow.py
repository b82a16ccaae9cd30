"""The Arrow IPC fuzzer (python/fuzz/arrow_outcome.py) as a regression test: a short, fixed run
over the decoder behind ``Outcome.arrow()``. Issue 21: a guest's malformed Arrow output made the
Python host segfault; the long runs and their counts are in python/fuzz/README.md."""

import pathlib
import subprocess
import sys

FUZZER = pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "arrow_outcome.py"
REGRESSIONS = FUZZER.parent / "regressions"

REPLAY = """
import resource, sys
sys.path.insert(0, sys.argv[1])
import arrow_outcome
from famfs_run import _native
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
data = open(sys.argv[2], "rb").read()
try:
    table = _native._read_arrow_ipc(data)
except Exception as e:
    print("refused", type(e).__name__, e)
else:
    arrow_outcome.exercise(table)
    print("read", table.num_rows, "rows")
"""


def test_inputs_the_fuzzer_found_are_refused_or_read(tmp_path):
    # Each file under python/fuzz/regressions/ once broke the host. rows-without-bytes-*: 704 to
    # 2,133 bytes of valid Arrow claiming 2^31 to 2^62 rows that no byte backs; reading such a
    # table (`to_pylist()`) took all the machine's memory (the kernel killed the fuzzer's worker
    # at 23 GB) until Outcome.arrow() refused tables with more rows than their bytes have bits.
    files = sorted(REGRESSIONS.iterdir())
    assert files
    for f in files:
        r = subprocess.run(
            [sys.executable, "-c", REPLAY, str(FUZZER.parent), str(f)], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, f"{f.name}: {r.stdout}{r.stderr}"
        assert r.stdout.startswith(("refused", "read")), r.stdout


def test_mutated_arrow_output_never_crashes_the_host(tmp_path):
    # In a child process: a crash is a failed assertion here, not a dead test run. 3,000 inputs
    # per worker (about a second); each is made from (seed, worker, iteration), so a failure
    # names the input that reproduces it.
    r = subprocess.run(
        [sys.executable, str(FUZZER), "--iterations", "3000", "--workers", "2", "--seed", "11", "--artifacts", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    total = r.stdout.strip().splitlines()[-1]
    assert total.startswith("total: 6000 executions") and total.endswith(" 0 out of memory, 0 crashes"), total
    # The mutations reach both outcomes: many inputs refused, and some still tables read in full.
    accepted = int(total.split(" accepted")[0].rsplit(" ", 1)[1])
    refused = int(total.split(" refused")[0].rsplit(" ", 1)[1])
    assert accepted > 100 and refused > 3000, total
    assert not list(tmp_path.iterdir()), "no input was saved as a crash"


def test_the_fuzzer_finds_crashes_without_validation(tmp_path):
    # What makes the test above able to fail: the same inputs read without Outcome.arrow()'s
    # full validation crash a worker (this is the defect issue 21 found). Seed 1 crashes within
    # the first 2,000 inputs of worker 0.
    source = FUZZER.read_text()
    call = "table = _native._read_arrow_ipc(data)"
    assert call in source
    unchecked = source.replace(
        call,
        "table = (pa.ipc.open_file if data.startswith(b'ARROW1') else pa.ipc.open_stream)(pa.py_buffer(data)).read_all()",
    )
    script = tmp_path / "unchecked.py"
    script.write_text(unchecked)
    r = subprocess.run(
        [sys.executable, str(script), "--iterations", "2000", "--workers", "1", "--seed", "1", "--artifacts", str(tmp_path / "art")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CRASH" in r.stderr and list((tmp_path / "art").iterdir())
