"""Progress lines, stage timings and measured results of a rehearsal.

One line per stage on the terminal; everything the tools print goes to ``<root>/log/<stage>.log``. Wall
times go to ``timings.json`` and what each stage measured (changed counts, Ray nodes, predictions, status
tables) to ``results.json``, both merged across separate ``python -m rehearsal <stage>`` invocations.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click


class StageFailed(click.ClickException):
    """A stage that did not do its job: one line naming what failed and where the log is."""


def _merge(path: Path, key: str, value: Any) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def log_path(root: Path, stage: str) -> Path:
    return root / "log" / f"{stage}.log"


def note(root: Path, key: str, value: Any) -> None:
    """Record a measured result under ``key`` in results.json."""
    _merge(root / "results.json", key, value)


def results(root: Path) -> dict[str, Any]:
    path = root / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


@contextlib.contextmanager
def stage(root: Path, name: str, what: str) -> Iterator[dict[str, str]]:
    """Print ``== name: what ... ok (N s)``; the body may set ``summary['text']`` for the line's tail."""
    click.echo(f"== {name}: {what} ", nl=False)
    summary: dict[str, str] = {"text": ""}
    started = time.monotonic()
    try:
        yield summary
    except BaseException:
        click.echo(f"FAILED after {time.monotonic() - started:.1f} s (log: {log_path(root, name)})")
        raise
    seconds = round(time.monotonic() - started, 1)
    _merge(root / "timings.json", name, seconds)
    tail = f": {summary['text']}" if summary["text"] else ""
    click.echo(f"ok ({seconds:.1f} s){tail}")
