#!/usr/bin/env bash
# Installs what the tests need besides Rust, when it is missing (idempotent, quiet when all is
# there): the C guest toolchain (scripts/guest-deps.sh), the virtual machines' tools
# (scripts/vm-deps.sh), and pyarrow + pandas (the Arrow interoperability tests and benchmark).
set -euo pipefail

# The C guest toolchain (also what the SQL guest's C code needs).
bash "$(dirname "${BASH_SOURCE[0]}")/guest-deps.sh"

# The virtual-machine tests (tests/tests/vm_dax.rs): QEMU, ndctl, busybox-static, a kernel.
bash "$(dirname "${BASH_SOURCE[0]}")/vm-deps.sh"

if ! python3 -c 'import pyarrow, pandas' >/dev/null 2>&1; then
    echo "test-deps: installing pyarrow and pandas (PyPI)"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check pyarrow pandas
fi
