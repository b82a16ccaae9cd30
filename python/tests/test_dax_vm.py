"""The Python package on a real device-dax: a test machine (famfs-vm, tests/src/vm.rs) boots
with an NVDIMM made into /dev/dax0.0 and runs python/tests/vm/dax_inside.py there with this
virtual environment's Python, which makes a famfs on the device, writes and maps a frame, and
runs guests over the device (Famfs.open, Runtime.run, Runtime.invoke)."""

import os
import pathlib
import subprocess
import sys

from conftest import GUESTS, tool


def test_famfs_open_and_runtime_invoke_on_a_real_device_dax(tmp_path):
    inside = pathlib.Path(__file__).parent / "vm" / "dax_inside.py"
    r = subprocess.run(
        [
            str(tool("famfs-vm")),
            "--scratch", str(tmp_path),
            "--env", f"FAMFS_RUN_GUESTS={GUESTS}",
            "--env", "PYTHONDONTWRITEBYTECODE=1",
            "--timeout", "900",
            "--", sys.executable, str(inside),
        ],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
    )
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    for what in ["write_feather + Famfs.open", "Runtime.run wc", "Runtime.invoke sum_handler"]:
        assert f"dax: {what}" in r.stdout, r.stdout
    print(r.stdout, r.stderr)
