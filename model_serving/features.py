"""Raw dataset columns -> model features, shared by training and serving (docs/contracts.md §2).

Why one module: the two public projects this system replaces fitted their scaler outside the model and
served without it. Here every transformation lives inside ONE scikit-learn ``Pipeline`` that takes the raw
dataset columns of §1, so whatever was fitted is pickled with the model and production cannot drift from
training.

Ages are measured against each row's ``collected_at`` (the moment the row was fetched; at serving time, the
moment of the lookup or of the request), never against "today", so a repository gives the same features at
training and at serving time.

``updated_at`` is deliberately NOT read: GitHub bumps a repository's ``updated_at``
when it is starred, so "days since update" measures star activity, i.e. the target. In the genuine search
pages under ../shared every one of the most-starred repositories has ``updated_at`` within the same 4 days
(2023-05-18..22) while their ``pushed_at`` spans 3.5 years.
``pushed_at`` (the last push) is a real activity signal and stays.

Raise ``FEATURE_VERSION`` whenever the output of this module changes: the git hooks refuse a model whose
``feature_version`` differs from the serving code's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data_collection.schema import DATASET_DTYPES, TARGET_ALIASES, TARGET_COLUMN, TOPICS_SEPARATOR, DType

FEATURE_VERSION: Final = 2

#: The yes/no columns (one rule reads them: `flag_value`).
FLAG_COLUMNS: Final = (
    "has_wiki",
    "has_pages",
    "has_issues",
    "has_projects",
    "has_discussions",
    "archived",
    "fork",
    "is_template",
)

#: Raw columns the pipeline reads. Everything else in the input (the target and its aliases included) is
#: dropped, never used. Any of them may be absent or empty: absent means unknown.
INPUT_COLUMN_NAMES: Final[tuple[str, ...]] = (
    "owner_type",
    "forks_count",
    "open_issues_count",
    "size",
    "language",
    "license_spdx",
    "topics",
    "description",
    "homepage",
    *FLAG_COLUMNS,
    "created_at",
    "pushed_at",
    "subscribers_count",
    "contributors_count",
    "commits_count",
    "releases_count",
    "owner_followers",
    "collected_at",
)

#: The manifest's ``input_columns`` (docs/contracts.md §3): name and dtype of every raw column the model
#: reads.
INPUT_COLUMNS: Final[tuple[dict[str, DType], ...]] = tuple(
    {"name": name, "dtype": DATASET_DTYPES[name]} for name in INPUT_COLUMN_NAMES
)

COUNT_COLUMNS: Final = (
    "forks_count",
    "open_issues_count",
    "size",
    "subscribers_count",
    "contributors_count",
    "commits_count",
    "releases_count",
    "owner_followers",
)
CATEGORY_COLUMNS: Final = ("language", "license_spdx", "owner_type")

_DAYS_PER_YEAR: Final = 365.25
_TRUE_STRINGS: Final = frozenset({"true", "1", "yes", "t", "y", "on"})
_FALSE_STRINGS: Final = frozenset({"false", "0", "no", "f", "n", "off"})


def _to_utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")


def flag_value(value: object) -> float:
    """CSV 'true'/'false', JSON booleans and 0/1 become 1.0/0.0; anything else is unknown (NaN).

    One value at a time, so the compiled serving path (production_server/compiled_pipeline.py) uses the same
    rule.
    """
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value in (0, 1) else np.nan
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_STRINGS:
            return 1.0
        if lowered in _FALSE_STRINGS:
            return 0.0
    return np.nan


def _to_flag(series: pd.Series) -> pd.Series:
    return series.map(flag_value).astype(float)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """The column if present, else an all-missing one: absent enrichment (or form fields) means unknown."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype=object)


def _count(frame: pd.DataFrame, name: str) -> pd.Series:
    """A count as plain float64 with NaN for unknown, whatever came in: CSV text, JSON numbers or None, or
    the nullable ``Int64`` of ``data_collection.dataset.read_dataset`` (whose ``pd.NA`` would otherwise leak
    into the imputer as an object column)."""
    counts = pd.to_numeric(_column(frame, name), errors="coerce")
    return pd.Series(np.asarray(counts.astype("Float64").to_numpy(na_value=np.nan), dtype=float),
                     index=frame.index).clip(lower=0)


def _text_length(series: pd.Series) -> pd.Series:
    return series.map(lambda v: float(len(v)) if isinstance(v, str) else 0.0)


def _topics_count(series: pd.Series) -> pd.Series:
    def count(value: object) -> float:
        if isinstance(value, list | tuple):
            return float(len(value))
        if isinstance(value, str) and value.strip():
            return float(len([t for t in value.split(TOPICS_SEPARATOR) if t.strip()]))
        return 0.0

    return series.map(count)


class RepositoryFeatures(BaseEstimator, TransformerMixin):
    """Stateless step: raw dataset columns -> numeric features plus raw category strings.

    Stateless on purpose (nothing learnt from the data here), so it cannot leak across folds; everything
    learnt (imputation medians, category vocabularies, scaling) happens in the fitted steps after it.
    """

    def fit(self, X: pd.DataFrame, y: object = None) -> RepositoryFeatures:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(X).reset_index(drop=True)
        now = pd.Timestamp.now(tz="UTC")
        collected = _to_utc(_column(frame, "collected_at")).fillna(now)
        created = _to_utc(_column(frame, "created_at"))
        pushed = _to_utc(_column(frame, "pushed_at"))

        def days_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
            return ((later - earlier).dt.total_seconds() / 86400.0).clip(lower=0.0)

        out = pd.DataFrame(index=frame.index)
        age_days = days_between(collected, created)
        age_years = (age_days / _DAYS_PER_YEAR).clip(lower=1.0 / 12.0)
        out["age_days"] = age_days
        out["days_since_push"] = days_between(collected, pushed)
        out["active_span_days"] = days_between(pushed, created)

        for name in COUNT_COLUMNS:
            out[f"log_{name}"] = np.log1p(_count(frame, name))
        for name in ("forks_count", "commits_count", "releases_count", "contributors_count"):
            out[f"log_{name}_per_year"] = np.log1p(_count(frame, name) / age_years)

        out["topics_count"] = _topics_count(_column(frame, "topics"))
        out["description_length"] = _text_length(_column(frame, "description"))
        out["has_homepage"] = _text_length(_column(frame, "homepage")).gt(0).astype(float)
        for name in FLAG_COLUMNS:
            out[name] = _to_flag(_column(frame, name))

        for name in CATEGORY_COLUMNS:
            values = _column(frame, name)
            out[name] = values.where(values.map(lambda v: isinstance(v, str) and v.strip() != ""), np.nan)
            out[name] = out[name].astype(object)
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        numeric = numeric_feature_names()
        return np.asarray([*numeric, *CATEGORY_COLUMNS], dtype=object)


def numeric_feature_names() -> list[str]:
    """Names of the numeric features RepositoryFeatures produces, in order."""
    names = ["age_days", "days_since_push", "active_span_days"]
    names += [f"log_{name}" for name in COUNT_COLUMNS]
    names += [
        f"log_{name}_per_year"
        for name in ("forks_count", "commits_count", "releases_count", "contributors_count")
    ]
    names += ["topics_count", "description_length", "has_homepage", *FLAG_COLUMNS]
    return names


def build_encoder(*, min_category_frequency: int = 10, max_categories: int = 40) -> ColumnTransformer:
    """Impute and scale numeric features; one-hot categories (never ordinal codes), unseen ones ignored.

    Missing numeric values (unknown enrichment) get the training median plus a missing-indicator column, so
    the model can learn that "unknown" differs from "typical".
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            # keep_empty_features: a category column that is empty in every training row (e.g. owner_type in
            # a dataset that lacks it) becomes the "(none)" category instead of being dropped with a warning.
            (
                "impute",
                SimpleImputer(strategy="constant", fill_value="(none)", keep_empty_features=True),
            ),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=min_category_frequency,
                    max_categories=max_categories,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, numeric_feature_names()),
            ("categorical", categorical, list(CATEGORY_COLUMNS)),
        ],
        verbose_feature_names_out=False,
    )


def build_pipeline(regressor: BaseEstimator | RegressorMixin, **encoder_options: int) -> Pipeline:
    """The whole model: raw columns -> features -> encoding -> regressor on log1p(stars).

    Hyper-parameters of the regressor are addressed as ``model__regressor__<name>``.
    """
    return Pipeline(
        [
            ("features", RepositoryFeatures()),
            ("encode", build_encoder(**encoder_options)),
            (
                "model",
                TransformedTargetRegressor(
                    regressor=regressor, func=np.log1p, inverse_func=np.expm1, check_inverse=False
                ),
            ),
        ]
    )


def select_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep only the columns the model reads; the target and its aliases are dropped, never used."""
    dropped = {TARGET_COLUMN, *TARGET_ALIASES}
    keep = [c for c in INPUT_COLUMN_NAMES if c in frame.columns and c not in dropped]
    return frame.loc[:, keep]


def target_of(frame: pd.DataFrame) -> pd.Series:
    """The training target: ``stargazers_count`` as float (the log1p lives in the pipeline)."""
    return pd.to_numeric(frame[TARGET_COLUMN], errors="raise").astype(float)


def predict_with_interval(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    low: float = 10.0,
    high: float = 90.0,
    compiled: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point prediction and the ``low``-``high`` percentile band over the forest's trees, in stars.

    ``compiled``: the pipeline's ``compiled_pipeline.CompiledModel`` when the caller keeps one (the Celery
    worker builds it once per loaded model): same answers, a fraction of the CPU. Without it, a scikit-learn
    forest is still walked once: the rows are transformed once and every tree predicts once, and the point is
    the mean of those per-tree predictions, accumulated exactly as ``ForestRegressor.predict`` does, then
    inverted as ``TransformedTargetRegressor.predict`` does. For a regressor without ``estimators_`` (not a
    forest) the band collapses to the point prediction.
    """
    if compiled is not None:
        return compiled.predict_frame(frame, low=low, high=high)
    X = select_input(frame)
    target_step: TransformedTargetRegressor = pipeline.named_steps["model"]
    forest = target_step.regressor_
    trees = getattr(forest, "estimators_", None)
    if trees is None or len(np.shape(trees)) != 1:
        point = np.asarray(pipeline.predict(X), dtype=float)
        return point, point.copy(), point.copy()
    encoded = np.asarray(pipeline[:-1].transform(X))
    if isinstance(forest, RandomForestRegressor | ExtraTreesRegressor) and forest.n_outputs_ == 1:
        rows32 = np.ascontiguousarray(encoded, dtype=np.float32)  # what the forest's own validation makes
        per_tree_log = np.stack([tree.predict(rows32, check_input=False) for tree in trees])
        mean = np.zeros(per_tree_log.shape[1], dtype=np.float64)
        for prediction in per_tree_log:  # ForestRegressor.predict's order of accumulation
            mean += prediction
        mean /= len(trees)
        point = np.asarray(target_step.transformer_.inverse_transform(mean.reshape(-1, 1)),
                           dtype=float).reshape(-1)
    else:  # another ensemble: its own predict is the point, its members give the band
        point = np.asarray(pipeline.predict(X), dtype=float)
        per_tree_log = np.stack([tree.predict(encoded) for tree in trees])
    lower = np.expm1(np.percentile(per_tree_log, low, axis=0))
    upper = np.expm1(np.percentile(per_tree_log, high, axis=0))
    return np.clip(point, 0, None), np.clip(lower, 0, None), np.clip(upper, 0, None)
