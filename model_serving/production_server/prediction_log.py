"""The prediction log: one JSON line per prediction (time, model version, inputs, output), for drift checks.

Why O_APPEND and one ``write`` per request: several gunicorn processes append to the same file; with
O_APPEND each write lands at the end, whole, so lines never interleave or overwrite each other. JSON Lines so
a drift check can stream it with pandas (``read_json(lines=True)``) without loading the service's state.

Why rotation here and not logrotate: the file is written by every gunicorn process of every stack (also the
local ones no logrotate sees). Before a write that would take the file past ``max_bytes``, the writer takes
an exclusive ``flock`` on ``<log>.lock``, checks the size again BY NAME (another process may have rotated
already), and renames ``log.(N-1)`` -> ``log.N`` ... ``log`` -> ``log.1``; the oldest falls off, so at most
``backups`` old files remain and the disk use is bounded by about ``(backups + 1) * max_bytes``. A process
that opened the file just before the rename finishes its one write into ``log.1``: the line moves with the
file, it is never lost or torn. Every append opens the file anew, so the next write goes to the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def record(
    *, model_version: str, inputs: Mapping[str, Any], predicted: float, interval: tuple[float, float],
    actual: int | None, source: str, now: datetime | None = None,
) -> dict[str, Any]:
    """One log entry. ``source``: "given" (the client), or a looked-up row's "github", "cache", "dataset"."""
    return {
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model_version": model_version,
        "source": source,
        "inputs": dict(inputs),
        "output": {"predicted_stars": predicted, "interval": list(interval), "actual_stars": actual},
    }


#: Rotate before the log grows past this many bytes, and keep this many rotated files (ServingSettings).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5


def rotated_name(path: Path, index: int) -> Path:
    """``predictions.jsonl.1`` is the newest rotated file, ``.<backups>`` the oldest."""
    return path.with_name(f"{path.name}.{index}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _rotate_if_full(path: Path, incoming: int, max_bytes: int, backups: int) -> None:
    """Shift the files by one under an exclusive lock, if ``incoming`` more bytes would pass ``max_bytes``."""
    lock = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _size(path)
        if current == 0 or current + incoming <= max_bytes:
            return  # another process rotated while this one waited for the lock
        if backups == 0:
            path.unlink()
            return
        for index in range(backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(rotated_name(path, index), rotated_name(path, index + 1))
        os.replace(path, rotated_name(path, 1))
    finally:
        os.close(lock)  # closing the descriptor releases the flock


def append(
    path: Path, entries: Iterable[Mapping[str, Any]], *, max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
) -> bool:
    """Append entries as JSON lines in one write; False (and an error in the log) if the file is unwritable.

    A full disk must not turn every prediction into an error for the person waiting, so this never raises;
    the failure is logged and counted by the caller. ``max_bytes`` 0 turns rotation off.
    """
    data = "".join(json.dumps(e, separators=(",", ":"), sort_keys=True, default=str) + "\n" for e in entries)
    if not data:
        return True
    encoded = data.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if max_bytes > 0 and _size(path) + len(encoded) > max_bytes:
            _rotate_if_full(path, len(encoded), max_bytes, backups)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, encoded)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("prediction log %s not written: %s", path, exc.strerror)
        return False
    return True
