"""Broken shadow models for the shadow tests: signed, loadable, and failing where a real model would answer.

The classes live in an importable module because the Celery workers (cwd: the checkout) unpickle them.
Pre-receive would refuse these (the canned-sample check predicts with them), so the tests install them with
``releases.install_shadow``, the function post-receive calls after the checks: what is tested is the worker's
side, which must survive whatever the shadow does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from model_serving import artifact, features
from synthetic.dataset import synthetic_dataset
from synthetic.versions import placeholder_metrics


class BrokenRegressor(RegressorMixin, BaseEstimator):
    """Fits like a model; predicting raises (``mode="raise"``) or blocks for ``seconds`` (``mode="hang"``)."""

    def __init__(self, mode: str = "raise", seconds: float = 600.0) -> None:
        self.mode = mode
        self.seconds = seconds

    def fit(self, X: Any, y: Any) -> BrokenRegressor:
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        if self.mode == "hang":
            time.sleep(self.seconds)
        raise RuntimeError("the shadow model exploded")


def broken_version(models_dir: Path, mode: str, secret: bytes) -> Path:
    """A signed version whose regressor is a BrokenRegressor (not compilable: scikit-learn's path runs it)."""
    data = synthetic_dataset(50, 5)
    pipeline = features.build_pipeline(BrokenRegressor(mode))
    pipeline.fit(features.select_input(data), features.target_of(data))
    version = artifact.write_version(
        pipeline, models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": 50},
        metrics={"protocol": "test fixture: a broken model", "cv": placeholder_metrics(0.0),
                 "holdout": placeholder_metrics(0.0)},
        params={}, tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={},
    )
    artifact.sign_version(version, secret)
    return version
