"""The evaluation protocol: held-out split first, then shared K folds, then metrics (docs/contracts.md §3).

Why it is written out: both public projects this system replaces fitted their scaler before the split and
picked hyper-parameters on the test set. Here the held-out part is cut FIRST (seeded), only its complement is
ever given to screening and tuning, every candidate is compared on the SAME shuffled folds, and the held-out
part is scored exactly once, by the final model. Everything learnt from data lives inside the Pipeline, so
each fold refits it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import KFold, train_test_split

from data_collection.schema import KEY_COLUMN
from model_serving import features

METRIC_NAMES: Final = ("r2_log", "r2", "mae", "rmse", "spearman")
PROTOCOL: Final = (
    "held-out split ({test_size:.0%}, seed {seed}) set aside before screening and tuning; "
    "{folds}-fold shuffled CV (seed {seed}) on the training part, the same folds for every candidate; "
    "final model refitted on the whole training part with the best CV params, "
    "scored once on the held-out part"
)

Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Split:
    """Row positions (in the loaded dataset) of the training and the held-out part."""

    train: np.ndarray
    holdout: np.ndarray


def holdout_split(n_rows: int, *, test_size: float, seed: int) -> Split:
    positions = np.arange(n_rows)
    train, holdout = train_test_split(positions, test_size=test_size, random_state=seed, shuffle=True)
    return Split(train=np.sort(train), holdout=np.sort(holdout))


def make_folds(n_rows: int, *, folds: int, seed: int) -> Folds:
    """Shuffled K folds as positions into the training part (0..n_rows-1), shared by every candidate."""
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(n_rows))]


def rows_digest(index: Sequence[int] | np.ndarray) -> str:
    """sha256 of a set of row positions: lets a Ray trial prove which rows it was given, cheaply."""
    values = np.sort(np.asarray(index, dtype=np.int64))
    return hashlib.sha256(values.tobytes()).hexdigest()


def names_digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, names))).encode("utf-8")).hexdigest()


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R² on log1p(stars) (what the model optimises), R², MAE and RMSE in stars, Spearman rank correlation."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.clip(np.asarray(y_pred, dtype=float), 0.0, None)
    rho = spearmanr(y_true, y_pred).statistic if np.ptp(y_pred) > 0 else 0.0
    return {
        "r2_log": float(r2_score(np.log1p(y_true), np.log1p(y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "spearman": float(0.0 if np.isnan(rho) else rho),
    }


def cross_validate(
    estimator: object,
    X: pd.DataFrame,
    y: pd.Series,
    folds: Folds,
    *,
    on_fold: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the folds (plus their std and the mean fit time): one clone per fold."""
    per_fold: list[dict[str, float]] = []
    fit_seconds: list[float] = []
    for number, (train_idx, valid_idx) in enumerate(folds):
        model = clone(estimator)
        started = time.perf_counter()
        model.fit(X.iloc[train_idx], y.iloc[train_idx])
        fit_seconds.append(time.perf_counter() - started)
        per_fold.append(regression_metrics(y.iloc[valid_idx].to_numpy(), model.predict(X.iloc[valid_idx])))
        if on_fold is not None:
            on_fold(number)
    result = {name: float(np.mean([m[name] for m in per_fold])) for name in METRIC_NAMES}
    result |= {f"{name}_std": float(np.std([m[name] for m in per_fold])) for name in METRIC_NAMES}
    result["fit_seconds"] = float(np.mean(fit_seconds))
    return result


def only_metrics(values: dict[str, float]) -> dict[str, float]:
    """The five contract metrics (model.json's metrics blocks), without stds and timings."""
    return {name: float(values[name]) for name in METRIC_NAMES}


@dataclass(frozen=True)
class Prepared:
    """What every stage receives: model inputs and target of the training part, and the shared folds."""

    X_train: pd.DataFrame  # index = row position in the dataset (lets trials prove what they saw)
    y_train: pd.Series
    X_holdout: pd.DataFrame
    y_holdout: pd.Series
    holdout_names: list[str]
    split: Split
    folds: Folds


def prepare(frame: pd.DataFrame, *, test_size: float, folds: int, seed: int) -> Prepared:
    split = holdout_split(len(frame), test_size=test_size, seed=seed)
    train_rows = frame.iloc[split.train]
    holdout_rows = frame.iloc[split.holdout]
    return Prepared(
        X_train=features.select_input(train_rows),
        y_train=features.target_of(train_rows),
        X_holdout=features.select_input(holdout_rows),
        y_holdout=features.target_of(holdout_rows),
        holdout_names=[str(n) for n in holdout_rows[KEY_COLUMN]],
        split=split,
        folds=make_folds(len(split.train), folds=folds, seed=seed),
    )
