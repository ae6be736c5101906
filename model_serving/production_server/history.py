"""The release history of this host: every version served, from when to when, by whom, and how good it was.

Where it comes from: ``$STARGAZER_MODEL_DIR/deploy-log.jsonl``, the one line per activation that
``model_serving.releases.install_release`` appends (post-receive and ``make serve`` both go through it). An
activation serves its version from its ``time`` until the next activation's ``time``; the newest one serves
until now. A rollback is an activation like any other, so a version served twice has two periods.

Why the log and not the release directories: pruning deletes old releases, the log keeps every activation.
Held-out metrics are taken from the log entry (``holdout``, written since the history page exists), else
from the release's ``model.json`` while it is still on disk. The quality gate's scores (``gate``) and a
person's ``override_reason`` are read from the same entry when present; older entries simply lack them.

Only JSON is parsed here; a torn or foreign line is skipped and counted, never fatal: the page about the
history must not be the thing that breaks when the history is damaged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from model_serving import artifact, releases

#: The held-out metrics the page shows, in this order (``model.json``'s ``metrics.holdout``).
SHOWN_METRICS: tuple[str, ...] = ("r2_log", "mae", "spearman")


@dataclass(frozen=True)
class Period:
    """One activation: the version served from ``started`` until ``ended`` (None: still serving)."""

    started: str
    ended: str | None
    event: str
    pushed_by: str | None
    hook_user: str | None
    commit: str | None

    def to_json(self) -> dict[str, Any]:
        return {"from": self.started, "until": self.ended, "event": self.event, "pushed_by": self.pushed_by,
                "hook_user": self.hook_user, "commit": self.commit}


@dataclass
class Release:
    """Everything known about one version on this host, its periods newest first."""

    version: str
    periods: list[Period] = field(default_factory=list)
    serving: bool = False
    installed: bool = False
    holdout: dict[str, float] | None = None
    gate: dict[str, Any] | None = None
    override_reason: str | None = None

    @property
    def created_at(self) -> str:
        """Versions are named ``YYYYMMDDTHHMMSSZ-<hash>``: their UTC creation time."""
        stamp = datetime.strptime(self.version[:16], "%Y%m%dT%H%M%SZ")
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def pushed_by(self) -> str | None:
        return self.periods[0].pushed_by if self.periods else None

    def gate_scores(self) -> list[tuple[str, float]]:
        """The gate's scores as (dotted name, value): the pushed and the serving model's when it recorded
        them (``githooks/gate.py``), else every number it recorded, whatever the nesting."""
        gate = self.gate or {}
        scored = {key: gate[key] for key in ("pushed", "serving") if isinstance(gate.get(key), dict)}
        return _numbers(scored or gate)

    @property
    def gate_decision(self) -> str | None:
        """passed, first-model, served-before, overridden ... as the gate wrote it."""
        return _text((self.gate or {}).get("decision"))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created_at": self.created_at,
            "serving": self.serving,
            "installed": self.installed,
            "pushed_by": self.pushed_by,
            "served": [p.to_json() for p in self.periods],
            "holdout": self.holdout,
            "gate": self.gate,
            "override_reason": self.override_reason,
        }


@dataclass(frozen=True)
class History:
    host: str | None
    serving: str | None
    releases: list[Release]
    skipped_lines: int

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "serving": self.serving, "skipped_lines": self.skipped_lines,
                "releases": [r.to_json() for r in self.releases]}


def read_log(model_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """Entries of the deploy log oldest first, and how many lines were not usable entries."""
    path = model_dir / releases.DEPLOY_LOG
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    entries: list[dict[str, Any]] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if (not isinstance(entry, dict) or not isinstance(entry.get("time"), str)
                or not artifact.VERSION_PATTERN.match(str(entry.get("version")))):
            skipped += 1
            continue
        entries.append(entry)
    return entries, skipped


def build(model_dir: Path) -> History:
    """The host's history, the most recently activated release first."""
    entries, skipped = read_log(model_dir)
    serving = releases.current_version(model_dir)
    by_version: dict[str, Release] = {}
    order: list[str] = []
    for index, entry in enumerate(entries):
        following = entries[index + 1]["time"] if index + 1 < len(entries) else None
        version = entry["version"]
        release = by_version.get(version)
        if release is None:
            release = by_version[version] = Release(version)
        if version in order:
            order.remove(version)
        order.append(version)
        release.periods.insert(0, Period(
            started=entry["time"], ended=following, event=str(entry.get("event") or "deploy"),
            pushed_by=_text(entry.get("actor")), hook_user=_text(entry.get("user")),
            commit=_text(entry.get("commit")),
        ))
        release.holdout = _metrics(entry.get("holdout")) or release.holdout
        if isinstance(entry.get("gate"), dict):
            release.gate = entry["gate"]
        if _text(entry.get("override_reason")):
            release.override_reason = _text(entry.get("override_reason"))
    if serving is not None and serving not in by_version:  # installed by hand, never logged
        by_version[serving] = Release(serving)
        order.append(serving)
    for release in by_version.values():
        directory = model_dir / releases.RELEASES_DIR / release.version
        release.installed = directory.is_dir()
        release.serving = release.version == serving
        if release.periods and not release.serving and release.periods[0].ended is None:
            # The log's newest activation is not what ``current`` serves (switched by hand): say it ended.
            release.periods[0] = dataclasses.replace(release.periods[0], ended="unknown")
        if release.holdout is None and release.installed:
            release.holdout = _manifest_holdout(directory)
    host = next((str(e["host"]) for e in reversed(entries) if e.get("host")), None)
    return History(host, serving, [by_version[v] for v in reversed(order)], skipped)


def _manifest_holdout(directory: Path) -> dict[str, float] | None:
    try:
        manifest = artifact.read_manifest(directory)
    except artifact.ArtifactError:
        return None
    return _metrics(manifest.metrics.holdout.model_dump())


def _metrics(raw: object) -> dict[str, float] | None:
    if not isinstance(raw, dict):
        return None
    values = {k: float(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return values or None


def _numbers(raw: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    found: list[tuple[str, float]] = []
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += _numbers(value, f"{name}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((name, float(value)))
    return found


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
