"""Small but real model versions: ``features.build_pipeline`` fitted on synthetic rows and written by
``artifact.write_version`` exactly as training writes them (unsigned; callers sign what they deploy).

The metrics recorded are placeholders and say so in ``protocol``: these versions exist to exercise deploy and
serving, not to report accuracy. ``build_tiny_version`` stamps a version with the wall clock; rollback and
pruning need a known age order, hence ``write_at`` and ``make_versions`` with explicit creation times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sklearn.ensemble import RandomForestRegressor

from model_serving import artifact, features
from synthetic.dataset import synthetic_dataset

#: The creation time of the oldest version ``make_versions`` writes.
START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
PLACEHOLDER_PROTOCOL = "test fixture: metrics are placeholders"
NO_TUNING = {"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"}


def placeholder_metrics(value: float) -> dict[str, float]:
    """A metrics block with every metric name, for versions whose accuracy is not the point."""
    return {"r2_log": value, "r2": value, "mae": 1.0, "rmse": 1.0, "spearman": value}


def fitted_pipeline(seed: int, *, rows: int = 200, n_estimators: int = 8) -> object:
    """The training pipeline (features + a small forest) fitted on ``rows`` synthetic rows."""
    data = synthetic_dataset(rows, seed)
    pipeline = features.build_pipeline(
        RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1)
    )
    pipeline.fit(features.select_input(data), features.target_of(data))
    return pipeline


def shuffled_pipeline(seed: int, *, rows: int = 200, n_estimators: int = 8) -> object:
    """The same pipeline fitted on the same rows with their stars shuffled: an honestly worse model (it
    learns the star distribution, not which repository has which)."""
    data = synthetic_dataset(rows, seed)
    target = features.target_of(data).sample(frac=1.0, random_state=seed + 1000).reset_index(drop=True)
    pipeline = features.build_pipeline(
        RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1)
    )
    pipeline.fit(features.select_input(data), target)
    return pipeline


def build_tiny_version(models_dir: Path, *, rows: int = 300, n_estimators: int = 10, seed: int = 0) -> Path:
    """Fit a small forest on synthetic rows and write it as a model version (unsigned, as training does)."""
    return artifact.write_version(
        fitted_pipeline(seed, rows=rows, n_estimators=n_estimators),
        models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": rows},
        metrics={"protocol": PLACEHOLDER_PROTOCOL, "cv": placeholder_metrics(0.5),
                 "holdout": placeholder_metrics(0.5)},
        params={"n_estimators": n_estimators},
        tuning=NO_TUNING,
        baseline={"median": placeholder_metrics(0.0), "default_rf_raw": placeholder_metrics(0.3)},
    )


def write_at(pipeline: object, models_dir: Path, index: int) -> Path:
    """Write ``pipeline`` as a version created ``index`` minutes after START (so names sort by index)."""
    return artifact.write_version(
        pipeline,
        models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": 200},
        metrics={"protocol": PLACEHOLDER_PROTOCOL, "cv": placeholder_metrics(0.5),
                 "holdout": placeholder_metrics(0.5)},
        params={"n_estimators": 8},
        tuning=NO_TUNING,
        baseline={"median": placeholder_metrics(0.0)},
        now=START + timedelta(minutes=index),
    )


def make_versions(models_dir: Path, count: int) -> list[Path]:
    """``count`` distinct models (different seeds), oldest first."""
    return [write_at(fitted_pipeline(seed), models_dir, seed) for seed in range(count)]
