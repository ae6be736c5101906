"""Helpers of the drift tests: a signed release that ships its training data, and request streams written
through the real prediction-log writer (rotation included), drawn from the training distribution or a
shifted one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.dummy import DummyRegressor

from data_collection.dataset import render_csv
from model_serving import artifact, releases
from model_serving.production_server import prediction_log
from synthetic.dataset import synthetic_dataset

TRAINING_ROWS = 1500


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the API logs them: JSON types, None for unknown, booleans for flags."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for row in rows:
        for key, value in row.items():
            if value in ("true", "false"):
                row[key] = value == "true"
            elif hasattr(value, "item"):
                row[key] = value.item()
    return rows


def version_with_training_data(root: Path, secret: bytes, *, rows: int = TRAINING_ROWS, seed: int = 1,
                               now: datetime | None = None, holdout: dict[str, float] | None = None) -> Path:
    """A version written as training writes it (with ``dataset_file``), signed as deploy signs it.

    The model itself is a constant (drift never runs it); the training rows are the synthetic dataset's.
    """
    frame = synthetic_dataset(rows, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    dataset = root / f"repos-{seed}.csv"
    dataset.write_bytes(render_csv(json_rows(frame)))
    metrics = holdout or {"r2_log": 0.5, "r2": 0.4, "mae": 1.0, "rmse": 1.5, "spearman": 0.7}
    version = artifact.write_version(
        DummyRegressor().fit([[0]], [1]), root / "models",
        dataset={"path": str(dataset), "sha256": "0" * 64, "rows": rows},
        metrics={"protocol": "test", "cv": metrics, "holdout": metrics}, params={},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"}, baseline={},
        dataset_file=dataset, now=now,
    )
    artifact.sign_version(version, secret)
    return version


def serve(version: Path, model_dir: Path) -> str:
    releases.install_release(version, model_dir, actor="tests")
    return version.name


def unshifted_requests(count: int, seed: int = 2) -> list[dict[str, Any]]:
    """Repositories drawn from the training distribution (another sample of it)."""
    return json_rows(synthetic_dataset(count, seed=seed))


def shifted_requests(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """People now ask about much more forked, younger repositories: three features move, the rest do not."""
    frame = synthetic_dataset(count, seed=seed)
    frame["forks_count"] = frame["forks_count"] * 25 + 500
    collected = pd.Timestamp("2026-11-01T00:00:00Z")
    young = collected - pd.to_timedelta(frame.index.to_series() % 60 + 1, unit="D")
    frame["created_at"] = young.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
    frame["pushed_at"] = frame["collected_at"]
    return json_rows(frame)


def write_requests(log: Path, rows: list[dict[str, Any]], version: str, *, batch: int = 5,
                   max_bytes: int = 150_000, backups: int = 20,
                   start: datetime = datetime(2026, 11, 2, tzinfo=UTC)) -> None:
    """Append ``rows`` as the web process does, ``batch`` per request, rotating small files."""
    for offset in range(0, len(rows), batch):
        now = start + timedelta(seconds=offset)
        entries = [prediction_log.record(model_version=version, inputs=row, predicted=100.0,
                                         interval=(50.0, 200.0), actual=None, source="given", now=now)
                   for row in rows[offset:offset + batch]]
        assert prediction_log.append(log, entries, max_bytes=max_bytes, backups=backups)
