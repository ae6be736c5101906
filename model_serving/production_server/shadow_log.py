"""The shadow log: one JSON line per request a worker scored with both the serving and the shadow model.

Where: ``$STARGAZER_MODEL_DIR/shadow-logs/shadow-log.jsonl`` (rotated files ``.1`` .. ``.N`` beside it). The
prediction log's path is a setting of the web processes only; the model directory is the one place both
writers and readers know: the workers (they hold ``current`` and ``shadow`` there) write it, and the
post-receive hook, which answers ``deploy``'s report requests and knows only ``stargazer.modeldir``, reads it.
A directory of its own, because the workers run as an account that may write nothing else of the model
directory (the celery_worker role makes it theirs; the deploy installer leaves its owner alone). Like the
deploy log next to it, it describes releases, not clients: it holds the two models' predictions and timings,
never a request's inputs.

Writing goes through ``prediction_log.append`` (one O_APPEND write per line, rotation under a lock before the
file passes ``max_bytes``), with the prediction log's size and backup settings: the same bounded disk use,
the same guarantees for several worker processes appending at once.

Line shape::

    {"time": "2026-11-01T12:00:00.000000Z", "serving_version": "...", "shadow_version": "...",
     "serving": [stars, ...], "shadow": [stars, ...] | null, "serving_ms": 0.4, "shadow_ms": 0.5 | null,
     "error": null | "one line", "dropped_before": 0, "pid": 1234}

``dropped_before``: requests this worker process did not shadow since its previous line (the shadow was
still busy or loading); ``error``: why this request's shadow scoring failed (then ``shadow`` is null).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from model_serving.production_server import prediction_log

DIR_NAME: Final = "shadow-logs"
FILE_NAME: Final = "shadow-log.jsonl"
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def path_for(model_dir: Path) -> Path:
    return model_dir / DIR_NAME / FILE_NAME


def record(
    *,
    serving_version: str,
    shadow_version: str,
    serving: Sequence[float],
    shadow: Sequence[float] | None,
    serving_seconds: float,
    shadow_seconds: float | None,
    error: str | None,
    dropped_before: int,
    pid: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    return {
        "time": (now or datetime.now(UTC)).strftime(TIME_FORMAT),
        "serving_version": serving_version,
        "shadow_version": shadow_version,
        "serving": [float(x) for x in serving],
        "shadow": [float(x) for x in shadow] if shadow is not None else None,
        "serving_ms": round(1000 * serving_seconds, 4),
        "shadow_ms": round(1000 * shadow_seconds, 4) if shadow_seconds is not None else None,
        "error": error,
        "dropped_before": dropped_before,
        "pid": pid,
    }


def append(path: Path, entry: dict[str, Any], *, max_bytes: int, backups: int) -> bool:
    """One line, rotated like the prediction log; False (logged) when the file cannot be written."""
    return prediction_log.append(path, [entry], max_bytes=max_bytes, backups=backups)


def files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    found: list[Path] = []
    index = 1
    while prediction_log.rotated_name(path, index).exists():
        found.append(prediction_log.rotated_name(path, index))
        index += 1
    found.reverse()
    if path.exists():
        found.append(path)
    return found


def parse_time(text: str) -> float:
    """Seconds since the epoch of a line's ``time``."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def read(path: Path, *, shadow_version: str, since: float) -> Iterator[dict[str, Any]]:
    """The lines about ``shadow_version`` written at or after ``since`` (epoch seconds), oldest first.

    A torn or foreign line is skipped: a report must not die on one bad line.
    """
    for name in files(path):
        try:
            handle = name.open(encoding="utf-8")
        except FileNotFoundError:  # rotated away between listing and opening
            continue
        with handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    if entry.get("shadow_version") != shadow_version or parse_time(entry["time"]) < since:
                        continue
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                yield entry
