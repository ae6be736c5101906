"""Helpers shared by the test packages: service requirements (docs/contracts.md §7), ports, shared data
paths."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RAW_API_PAGES = SHARED_DATA / "Data-Engineering-II-Project" / "raw_api_pages"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip when a real service/tool is missing locally; fail in CI, where a missing service is a defect."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but missing: {what}")
    pytest.skip(f"missing: {what}")


def require_executable(name: str, *candidates: str) -> str:
    """Return the path of an executable (PATH or given absolute candidates), or skip/fail per require()."""
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    require(found is not None, f"executable {name}")
    return str(found)


def require_root(what: str) -> None:
    require(os.geteuid() == 0, f"root for {what}")


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """Shared data may be absent (then skip, even in CI): it is never copied into the repo."""
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    return path


def free_port() -> int:
    """An unused TCP port on loopback (each test service gets its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Ray forwards its workers' output to the driver with a "(<task or actor> pid=N[, ip=A])" prefix (coloured on
#: a terminal). In a CLI's captured output those lines can land anywhere, even after the CLI's last line.
_RAY_FORWARDED = re.compile(r"^(\x1b\[[0-9;]*m)?\((\S+ )?pid=\d+(, ip=[0-9.]+)?\)")


def own_lines(output: str) -> list[str]:
    """A command's own output lines, without Ray's forwarded worker-log lines or trailing blanks."""
    lines = [line for line in output.strip().splitlines() if not _RAY_FORWARDED.match(line)]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
