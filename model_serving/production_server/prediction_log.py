"""The prediction log: one JSON line per prediction (time, model version, inputs, output), for drift checks.

Why O_APPEND and one ``write`` per request: several gunicorn processes append to the same file; with
O_APPEND each write lands at the end, whole, so lines never interleave or overwrite each other. JSON Lines so
a drift check can stream it with pandas (``read_json(lines=True)``) without loading the service's state.
"""

from __future__ import annotations

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


def append(path: Path, entries: Iterable[Mapping[str, Any]]) -> bool:
    """Append entries as JSON lines in one write; False (and an error in the log) if the file is unwritable.

    A full disk must not turn every prediction into an error for the person waiting, so this never raises;
    the failure is logged and counted by the caller.
    """
    data = "".join(json.dumps(e, separators=(",", ":"), sort_keys=True, default=str) + "\n" for e in entries)
    if not data:
        return True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("prediction log %s not written: %s", path, exc.strerror)
        return False
    return True
