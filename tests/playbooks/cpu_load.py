"""A busy host on demand: one busy loop per core, each bounded by its own deadline, stopped on exit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

# Ends by itself at the deadline even if the test process dies before it can stop it.
_BUSY_LOOP = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


@contextlib.contextmanager
def cpu_load(max_seconds: float, workers: int | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Load every core (or `workers` of them) with a spinning process at normal priority for the block."""
    count = workers or os.cpu_count() or 2
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(max_seconds)]) for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
