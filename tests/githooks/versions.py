"""Model versions for the deploy tests: real pipelines (tests.model_fixture's data), ordered version names.

``build_tiny_version`` stamps versions with the wall clock, so two built in one second sort by their hash;
rollback and pruning tests need a known age order, hence explicit creation times here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sklearn.ensemble import RandomForestRegressor

from model_serving import artifact, features
from tests.model_fixture import _fake_metrics, synthetic_dataset

START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def fitted_pipeline(seed: int, *, rows: int = 200, n_estimators: int = 8) -> object:
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


def write(pipeline: object, models_dir: Path, index: int) -> Path:
    """Write ``pipeline`` as a version created ``index`` minutes after START (so names sort by index)."""
    return artifact.write_version(
        pipeline,
        models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": 200},
        metrics={
            "protocol": "test fixture: metrics are placeholders",
            "cv": _fake_metrics(0.5),
            "holdout": _fake_metrics(0.5),
        },
        params={"n_estimators": 8},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={"median": _fake_metrics(0.0)},
        now=START + timedelta(minutes=index),
    )


def make_versions(models_dir: Path, count: int) -> list[Path]:
    """``count`` distinct models (different seeds), oldest first."""
    return [write(fitted_pipeline(seed), models_dir, seed) for seed in range(count)]
