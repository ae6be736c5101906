"""A compiled inference path for the served pipeline: scikit-learn's answers at a fraction of the CPU.

Why: a Celery worker spent ~85 ms of CPU on one 5-repository prediction (quiet machine), nearly all of it
per-call overhead rather than arithmetic: pandas builds ~60 small Series for the feature step, the
ColumnTransformer validates and copies its input, and the interval walked 200 trees one ``tree.predict`` at a
time (each validating its input again) after ``pipeline.predict`` had already transformed the rows and walked
the forest once. The arithmetic itself (5 rows x 200 trees x depth 16) is a few microseconds of work.

What is compiled, ONCE per loaded model (``compile_pipeline``; the worker's model store caches the result):

- the encoder's fitted state: numeric imputation medians and missing-indicator columns, the scaler's mean and
  scale, the one-hot vocabularies with their infrequent bucket and the unknown-category rule;
- the forest: every tree's nodes concatenated into flat NumPy arrays, leaves turned into self-loops, so ONE
  vectorised walk over all trees x rows (a loop over depth, not over trees) yields every tree's prediction.
  The point prediction is their mean (exactly how ``ForestRegressor.predict`` averages, summed tree by tree
  in order) passed through the target's inverse function, as ``TransformedTargetRegressor.predict`` does, and
  the p10/p90 band comes from the same per-tree values: one pass instead of two.

The feature step (``features.RepositoryFeatures``) stays the definition. ``fast_features`` is an equivalent of
it for the rows the web tier sends (JSON values: ISO 8601 times, integers, booleans, strings, None): it
mirrors pandas' arithmetic operation by operation (microsecond timestamps, ``total_seconds``' divmod split,
the same NumPy ufuncs on float64 arrays), so the numbers are bit-identical. Any value outside that proven
domain (a time pandas would parse differently, a count given as text, ...) makes it decline and the rows go
through ``RepositoryFeatures.transform`` itself; the compiled encoder and forest then take over from there.

Correctness is checked twice: tests compare against the plain pipeline on many rows
(tests/model_serving/production_server/test_compiled_pipeline.py), and ``compile_pipeline`` itself predicts
a set of probe rows both ways and refuses to compile (the caller falls back to scikit-learn) when anything
differs, so a future scikit-learn whose internals moved cannot silently serve different numbers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from data_collection.schema import TOPICS_SEPARATOR
from model_serving import features

log = logging.getLogger(__name__)

NUMERIC_NAMES: Final[tuple[str, ...]] = tuple(features.numeric_feature_names())
_TEXT_FEATURES: Final = ("description_length", "has_homepage")
_PER_YEAR: Final = ("forks_count", "commits_count", "releases_count", "contributors_count")
_US_PER_SECOND: Final = 1_000_000
_EPOCH_ORDINAL: Final = datetime(1970, 1, 1).toordinal()
#: Beyond 2**53 microseconds (285 years) pandas' ``total_seconds`` takes a different rounding branch; such
#: spans (years < 1741) go through pandas itself.
_MAX_EXACT_SPAN_US: Final = 2**53

#: The ISO 8601 spellings whose parse by ``pd.to_datetime(..., format="ISO8601", utc=True)`` is reproduced
#: exactly: a date, or a date and time to the second with up to 6 fraction digits (microseconds: pandas keeps
#: the ``us`` unit; a 7th digit switches it to ``ns``), and ``Z``, ``+HH:MM``/``-HH:MM`` or no zone (UTC).
_ISO_TIME: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):(\d{2}))?)?"
)


class _Decline(Exception):
    """A value outside what ``fast_features`` reproduces exactly: use the pandas feature step instead."""


# ----------------------------------------------------------------------------------------------------------
# the feature step, for JSON rows
# ----------------------------------------------------------------------------------------------------------


def _time_us(value: object) -> int | None:
    """Microseconds since the epoch (UTC) of one time value, None when unknown; _Decline when unsure."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if type(value) is not str:
        raise _Decline("time not given as a string")
    match = _ISO_TIME.fullmatch(value)
    if match is None:
        raise _Decline(f"time spelling not reproduced: {value!r}")
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        ordinal = datetime(int(year), int(month), int(day)).toordinal()
    except ValueError:
        raise _Decline(f"invalid date {value!r}") from None
    seconds = (ordinal - _EPOCH_ORDINAL) * 86400
    if hour is not None:
        h, m, s = int(hour), int(minute), int(second)
        if h > 23 or m > 59 or s > 59:
            raise _Decline(f"invalid time {value!r}")
        seconds += h * 3600 + m * 60 + s
        if sign is not None:
            oh, om = int(off_h), int(off_m)
            if oh > 23 or om > 59:
                raise _Decline(f"invalid offset {value!r}")
            offset = oh * 3600 + om * 60
            seconds -= offset if sign == "+" else -offset
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return seconds * _US_PER_SECOND + micro


def _count_value(value: object) -> float:
    """A count as pandas' ``to_numeric`` + ``Float64`` reads a JSON number or null."""
    if value is None:
        return np.nan
    kind = type(value)
    if kind is int:
        if -(2**53) <= value <= 2**53:  # type: ignore[operator]
            return float(value)  # type: ignore[arg-type]
        raise _Decline("count beyond exact float range")
    if kind is float:
        if value != value:
            return np.nan
        if value in (np.inf, -np.inf):
            raise _Decline("infinite count")
        return value  # type: ignore[return-value]
    raise _Decline(f"count given as {kind.__name__}")


def _topics_value(value: object) -> float:
    if isinstance(value, list | tuple):
        return float(len(value))
    if isinstance(value, str) and value.strip():
        return float(len([t for t in value.split(TOPICS_SEPARATOR) if t.strip()]))
    return 0.0


def _text_length_value(value: object) -> float:
    return float(len(value)) if isinstance(value, str) else 0.0


def _category_value(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() != "" else None


def _days_between(later: np.ndarray, later_known: np.ndarray, earlier: np.ndarray,
                  earlier_known: np.ndarray) -> np.ndarray:
    """``features.days_between`` on microsecond timestamps, operation by operation as pandas does it.

    pandas: ``(later - earlier)`` is ``timedelta64[us]``; ``.dt.total_seconds()`` splits it with
    ``np.divmod`` into whole seconds and a residual (``floor_s + residual / pps``); then ``/ 86400.0`` and
    ``clip(lower=0.0)`` (NaN kept).
    """
    known = later_known & earlier_known
    span = np.where(known, later - earlier, 0)
    if np.abs(span).max(initial=0) > _MAX_EXACT_SPAN_US:
        raise _Decline("time span beyond pandas' exact total_seconds branch")
    floor_s, residual = np.divmod(span, _US_PER_SECOND)
    seconds = floor_s + residual / _US_PER_SECOND
    days = np.where(known, seconds, np.nan) / 86400.0
    return _clip_lower(days, 0.0)


def _clip_lower(values: np.ndarray, lower: float) -> np.ndarray:
    """pandas' ``Series.clip(lower=...)``: below the bound becomes the bound, NaN stays NaN."""
    return np.where(np.isnan(values) | (values >= lower), values, lower)


def fast_features(rows: Sequence[Mapping[str, Any]],
                  now: datetime | None = None) -> tuple[np.ndarray, list[list[str | None]]] | None:
    """``RepositoryFeatures.transform`` for JSON rows, without pandas: (numeric matrix, category values).

    The numeric matrix has the columns of ``features.numeric_feature_names()`` in that order (float64, NaN for
    unknown); the categories are ``[language, license_spdx, owner_type]`` per row, None for unknown. Returns
    None when some value is outside the domain reproduced exactly (see the module docstring): the caller then
    uses the pandas step. ``now`` stands in for a missing ``collected_at`` (default: the current time, as the
    pandas step does).
    """
    try:
        return _fast_features(rows, now)
    except _Decline as reason:
        log.debug("fast feature step declined: %s", reason)
        return None


def _fast_features(rows: Sequence[Mapping[str, Any]],
                   now: datetime | None) -> tuple[np.ndarray, list[list[str | None]]]:
    n = len(rows)
    times: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("collected_at", "created_at", "pushed_at"):
        stamps = [_time_us(row.get(name)) for row in rows]
        known = np.fromiter((s is not None for s in stamps), dtype=bool, count=n)
        values = np.fromiter((s if s is not None else 0 for s in stamps), dtype=np.int64, count=n)
        times[name] = (values, known)
    collected, collected_known = times["collected_at"]
    if not collected_known.all():
        moment = now or datetime.now(UTC)
        now_us = ((moment.toordinal() - _EPOCH_ORDINAL) * 86400 + moment.hour * 3600 + moment.minute * 60
                  + moment.second) * _US_PER_SECOND + moment.microsecond
        if moment.utcoffset():
            now_us -= int(moment.utcoffset().total_seconds()) * _US_PER_SECOND  # type: ignore[union-attr]
        collected = np.where(collected_known, collected, now_us)
    always = np.ones(n, dtype=bool)
    created, created_known = times["created_at"]
    pushed, pushed_known = times["pushed_at"]

    columns: dict[str, np.ndarray] = {}
    age_days = _days_between(collected, always, created, created_known)
    age_years = _clip_lower(age_days / features._DAYS_PER_YEAR, 1.0 / 12.0)
    columns["age_days"] = age_days
    columns["days_since_push"] = _days_between(collected, always, pushed, pushed_known)
    columns["active_span_days"] = _days_between(pushed, pushed_known, created, created_known)

    counts = {
        name: _clip_lower(np.array([_count_value(row.get(name)) for row in rows], dtype=np.float64), 0)
        for name in features.COUNT_COLUMNS
    }
    for name in features.COUNT_COLUMNS:
        columns[f"log_{name}"] = np.log1p(counts[name])
    for name in _PER_YEAR:
        columns[f"log_{name}_per_year"] = np.log1p(counts[name] / age_years)

    columns["topics_count"] = np.array([_topics_value(row.get("topics")) for row in rows], dtype=np.float64)
    columns["description_length"] = np.array(
        [_text_length_value(row.get("description")) for row in rows], dtype=np.float64)
    homepage = np.array([_text_length_value(row.get("homepage")) for row in rows], dtype=np.float64)
    columns["has_homepage"] = (homepage > 0).astype(float)
    for name in features.FLAG_COLUMNS:
        columns[name] = np.array([features.flag_value(row.get(name)) for row in rows], dtype=np.float64)

    numeric = np.empty((n, len(NUMERIC_NAMES)), dtype=np.float64)
    for j, name in enumerate(NUMERIC_NAMES):
        numeric[:, j] = columns[name]
    categories = [[_category_value(row.get(name)) for name in features.CATEGORY_COLUMNS] for row in rows]
    return numeric, categories


def pandas_features(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[np.ndarray, list[list[str | None]]]:
    """The reference feature step (``RepositoryFeatures.transform``), shaped as the compiled encoder reads."""
    step = pipeline.named_steps["features"].transform(features.select_input(frame))
    numeric = step.loc[:, list(NUMERIC_NAMES)].to_numpy(dtype=np.float64)
    categories = [[value if isinstance(value, str) else None for value in row]
                  for row in step.loc[:, list(features.CATEGORY_COLUMNS)].itertuples(index=False)]
    return numeric, categories


# ----------------------------------------------------------------------------------------------------------
# the encoder
# ----------------------------------------------------------------------------------------------------------


class NotCompilable(Exception):
    """The pipeline is not the shape the compiled path reproduces; the message says what differs."""


@dataclass(frozen=True)
class CompiledEncoder:
    """The fitted ColumnTransformer of ``features.build_encoder`` as plain arrays and dicts."""

    medians: np.ndarray  #: per numeric feature: the value a missing one becomes
    indicator_columns: np.ndarray  #: numeric features that get a missing-indicator column, in output order
    mean: np.ndarray  #: scaler, over imputed + indicator columns
    scale: np.ndarray
    #: per category column: category -> output column (relative to the one-hot block), and the column of
    #: anything else (the infrequent bucket), or -1 when an unknown category encodes as all zeros.
    category_columns: tuple[dict[str, int], ...]
    unknown_columns: tuple[int, ...]
    #: per category column: the category a missing value is imputed with ("(none)").
    missing_categories: tuple[str, ...]
    category_offsets: tuple[int, ...]
    n_onehot: int

    @property
    def n_outputs(self) -> int:
        return len(self.mean) + self.n_onehot

    def transform(self, numeric: np.ndarray, categories: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Encoded rows, float64, exactly as ``ColumnTransformer.transform`` lays them out."""
        if np.isinf(numeric).any():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        missing = np.isnan(numeric)
        imputed = np.where(missing, self.medians, numeric)
        block = np.concatenate([imputed, missing[:, self.indicator_columns].astype(np.float64)], axis=1)
        block -= self.mean
        block /= self.scale
        onehot = np.zeros((len(numeric), self.n_onehot), dtype=np.float64)
        for i, row in enumerate(categories):
            for j, value in enumerate(row):
                key = self.missing_categories[j] if value is None else value
                column = self.category_columns[j].get(key, self.unknown_columns[j])
                if column >= 0:
                    onehot[i, self.category_offsets[j] + column] = 1.0
        return np.concatenate([block, onehot], axis=1)


def _named_step(pipeline: Pipeline, name: str, kind: type) -> Any:
    step = pipeline.named_steps.get(name) if isinstance(pipeline, Pipeline) else None
    if not isinstance(step, kind):
        raise NotCompilable(f"step {name!r} is {type(step).__name__}, not {kind.__name__}")
    return step


def _two_steps(part: Any, name: str, first: type, second: type) -> tuple[Any, Any]:
    """The two fitted steps of one part of the encoder; NotCompilable unless they are exactly these types."""
    if not isinstance(part, Pipeline) or [type(s) for _, s in part.steps] != [first, second]:
        raise NotCompilable(f"{name} part is not {first.__name__} -> {second.__name__}")
    return part.steps[0][1], part.steps[1][1]


def compile_encoder(encoder: ColumnTransformer) -> CompiledEncoder:
    """The fitted state of ``features.build_encoder()``'s ColumnTransformer; NotCompilable otherwise."""
    transformers = {name: (step, cols) for name, step, cols in encoder.transformers_}
    if set(transformers) - {"remainder"} != {"numeric", "categorical"}:
        raise NotCompilable(f"encoder parts {sorted(transformers)}, expected numeric and categorical")
    remainder = transformers.get("remainder")
    if remainder is not None and remainder[0] != "drop" and len(remainder[1]):
        raise NotCompilable("the encoder passes remaining columns through")
    if encoder.sparse_output_:
        raise NotCompilable("sparse encoder output")
    numeric, numeric_cols = transformers["numeric"]
    categorical, category_cols = transformers["categorical"]
    if list(numeric_cols) != list(NUMERIC_NAMES) or list(category_cols) != list(features.CATEGORY_COLUMNS):
        raise NotCompilable("encoder columns differ from the feature step's")
    slices = encoder.output_indices_
    if not (slices["numeric"].start == 0 and slices["categorical"].start == slices["numeric"].stop):
        raise NotCompilable("unexpected output layout")

    imputer, scaler = _two_steps(numeric, "numeric", SimpleImputer, StandardScaler)
    if imputer.strategy not in ("median", "mean", "most_frequent") or not _is_nan(imputer.missing_values):
        raise NotCompilable(f"numeric imputer strategy {imputer.strategy!r}")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    if np.isnan(statistics).any():
        if not imputer.keep_empty_features:
            raise NotCompilable("numeric imputer drops empty features")
        statistics = np.where(np.isnan(statistics), 0.0, statistics)
    indicator = getattr(imputer, "indicator_", None)
    if imputer.add_indicator:
        if indicator is None or indicator.features != "missing-only":
            raise NotCompilable("unexpected missing indicator")
        indicator_columns = np.asarray(indicator.features_, dtype=np.intp)
    else:
        indicator_columns = np.zeros(0, dtype=np.intp)
    width = len(statistics) + len(indicator_columns)
    mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(width), dtype=np.float64)
    scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones(width), dtype=np.float64)
    if mean.shape != (width,) or scale.shape != (width,):
        raise NotCompilable("scaler width differs from the imputer's output")

    cat_imputer, onehot = _two_steps(categorical, "categorical", SimpleImputer, OneHotEncoder)
    if cat_imputer.strategy != "constant" or not _is_nan(cat_imputer.missing_values):
        raise NotCompilable("categorical imputer is not a constant fill of NaN")
    if onehot.drop_idx_ is not None:
        raise NotCompilable("one-hot encoder drops a category")
    if onehot.handle_unknown not in ("infrequent_if_exist", "ignore", "warn"):
        raise NotCompilable(f"one-hot handle_unknown={onehot.handle_unknown!r}")
    fills = tuple(str(value) for value in cat_imputer.statistics_)
    maps: list[dict[str, int]] = []
    unknown: list[int] = []
    offsets: list[int] = []
    offset = 0
    infrequent_all = getattr(onehot, "infrequent_categories_", [None] * len(onehot.categories_))
    for categories, infrequent in zip(onehot.categories_, infrequent_all, strict=True):
        if not all(isinstance(c, str) for c in categories):
            raise NotCompilable("non-string categories")
        rare = set() if infrequent is None else set(infrequent)
        frequent = [c for c in categories if c not in rare]
        mapping = {c: k for k, c in enumerate(frequent)}
        bucket = -1
        if rare:
            if onehot.handle_unknown == "ignore":
                raise NotCompilable("handle_unknown='ignore' with infrequent categories")
            bucket = len(frequent)
            mapping.update(dict.fromkeys(rare, bucket))
        maps.append(mapping)
        unknown.append(bucket)
        offsets.append(offset)
        offset += len(frequent) + (1 if rare else 0)
    if offset != slices["categorical"].stop - slices["categorical"].start:
        raise NotCompilable("one-hot width differs from the encoder's output")
    return CompiledEncoder(statistics, indicator_columns, mean, scale, tuple(maps), tuple(unknown), fills,
                           tuple(offsets), offset)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and value != value


# ----------------------------------------------------------------------------------------------------------
# the forest
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledForest:
    """Every tree of a fitted forest in flat arrays, walked all at once.

    Node ``k`` of the concatenation tests ``x[feature[k]] <= threshold[k]`` (x as float32, compared in
    double, as scikit-learn's tree does) and continues at ``children[2k + 1]`` (left) or ``children[2k]``
    (right); a NaN goes left where ``nan_left[k]``. Leaves point to themselves, so ``depth`` steps bring
    every (tree, row) pair to its leaf whatever its own depth.
    """

    roots: np.ndarray  #: (trees,) index of each tree's root
    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray  #: (2 * nodes,) interleaved right, left
    nan_left: np.ndarray
    value: np.ndarray
    depth: int
    n_features: int

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def per_tree(self, encoded: np.ndarray) -> np.ndarray:
        """(trees, rows) predictions of every tree, as ``tree.predict`` returns them."""
        rows = encoded.shape[0]
        x = np.ascontiguousarray(encoded, dtype=np.float32).astype(np.float64).ravel()
        has_nan = bool(np.isnan(x).any())
        base = (np.arange(rows, dtype=np.intp) * self.n_features)[np.newaxis, :]
        node = np.repeat(self.roots[:, np.newaxis], rows, axis=1)
        for _ in range(self.depth):
            value = x[base + self.feature[node]]
            left = value <= self.threshold[node]
            if has_nan:
                left |= np.isnan(value) & self.nan_left[node]
            node = self.children[2 * node + left]
        return self.value[node]

    @staticmethod
    def mean(per_tree: np.ndarray) -> np.ndarray:
        """``ForestRegressor.predict``'s average: zeros, each tree's prediction added in order, divided."""
        total = np.zeros(per_tree.shape[1], dtype=np.float64)
        for prediction in per_tree:
            total += prediction
        total /= per_tree.shape[0]
        return total


def compile_forest(forest: Any) -> CompiledForest:
    """Flatten a fitted RandomForestRegressor / ExtraTreesRegressor (one output); NotCompilable otherwise."""
    if not isinstance(forest, RandomForestRegressor | ExtraTreesRegressor):
        raise NotCompilable(f"regressor {type(forest).__name__} is not a forest of regression trees")
    if getattr(forest, "n_outputs_", 1) != 1:
        raise NotCompilable("multi-output forest")
    trees = [estimator.tree_ for estimator in forest.estimators_]
    counts = np.array([t.node_count for t in trees], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    total = int(counts.sum())
    feature = np.empty(total, dtype=np.intp)
    threshold = np.empty(total, dtype=np.float64)
    children = np.empty(2 * total, dtype=np.intp)
    nan_left = np.empty(total, dtype=bool)
    value = np.empty(total, dtype=np.float64)
    for tree, start, count in zip(trees, starts, counts, strict=True):
        own = np.arange(start, start + count, dtype=np.intp)
        left = np.asarray(tree.children_left, dtype=np.intp)
        right = np.asarray(tree.children_right, dtype=np.intp)
        leaf = left == -1
        feature[own] = np.where(leaf, 0, tree.feature)
        threshold[own] = np.where(leaf, 0.0, tree.threshold)
        children[2 * own + 1] = np.where(leaf, own, left + start)
        children[2 * own] = np.where(leaf, own, right + start)
        nan_left[own] = np.asarray(tree.missing_go_to_left, dtype=bool)
        value[own] = tree.value[:, 0, 0]
    return CompiledForest(
        roots=starts, feature=feature, threshold=threshold, children=children, nan_left=nan_left,
        value=value, depth=max(t.max_depth for t in trees), n_features=int(forest.n_features_in_),
    )


# ----------------------------------------------------------------------------------------------------------
# the whole model
# ----------------------------------------------------------------------------------------------------------

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CompiledModel:
    """A fitted ``features.build_pipeline`` pipeline with a forest, compiled; see the module docstring."""

    pipeline: Pipeline
    encoder: CompiledEncoder
    forest: CompiledForest
    inverse: Any  #: the target's inverse function (np.expm1 for log1p stars)

    def predict_rows(self, rows: Sequence[Mapping[str, Any]], *, low: float = 10.0,
                     high: float = 90.0, now: datetime | None = None) -> Prediction:
        """``features.predict_with_interval`` for JSON rows (what the Celery task receives)."""
        computed = fast_features(rows, now)
        if computed is None:
            computed = pandas_features(self.pipeline, pd.DataFrame.from_records(list(rows)))
        return self._predict(*computed, low=low, high=high)

    def predict_frame(self, frame: pd.DataFrame, *, low: float = 10.0, high: float = 90.0) -> Prediction:
        """``features.predict_with_interval`` for a DataFrame: the pandas feature step, compiled after it."""
        return self._predict(*pandas_features(self.pipeline, frame), low=low, high=high)

    def encode(self, numeric: np.ndarray, categories: Sequence[Sequence[str | None]]) -> np.ndarray:
        return self.encoder.transform(numeric, categories)

    def _predict(self, numeric: np.ndarray, categories: Sequence[Sequence[str | None]], *, low: float,
                 high: float) -> Prediction:
        per_tree_log = self.forest.per_tree(self.encoder.transform(numeric, categories))
        point = self.inverse(CompiledForest.mean(per_tree_log))
        lower = np.expm1(np.percentile(per_tree_log, low, axis=0))
        upper = np.expm1(np.percentile(per_tree_log, high, axis=0))
        return np.clip(point, 0, None), np.clip(lower, 0, None), np.clip(upper, 0, None)


def compile_pipeline(pipeline: Any, *, verify: bool = True) -> CompiledModel:
    """Compile a fitted ``features.build_pipeline`` pipeline whose regressor is a forest.

    Raises NotCompilable (with the reason) for any other shape, and, with ``verify``, when the compiled
    model's answers on probe rows differ from the pipeline's own: the caller then serves with scikit-learn.
    """
    if not isinstance(pipeline, Pipeline) or [name for name, _ in pipeline.steps] != [
        "features", "encode", "model"
    ]:
        raise NotCompilable("not a features -> encode -> model pipeline")
    if type(pipeline.named_steps["features"]) is not features.RepositoryFeatures:
        raise NotCompilable("feature step is not RepositoryFeatures")
    encoder = compile_encoder(_named_step(pipeline, "encode", ColumnTransformer))
    target: TransformedTargetRegressor = _named_step(pipeline, "model", TransformedTargetRegressor)
    transformer = getattr(target, "transformer_", None)
    if (not isinstance(transformer, FunctionTransformer) or transformer.inv_kw_args
            or transformer.inverse_func is None):
        raise NotCompilable("target transform is not a plain inverse function")
    forest = compile_forest(target.regressor_)
    if forest.n_features != encoder.n_outputs:
        raise NotCompilable("forest width differs from the encoder's output")
    model = CompiledModel(pipeline, encoder, forest, transformer.inverse_func)
    if verify:
        verify_against_pipeline(model)
    return model


def probe_rows(encoder: CompiledEncoder) -> list[dict[str, Any]]:
    """Rows that exercise every fitted part: each known category, unknown and missing ones, empty rows."""
    rows: list[dict[str, Any]] = [{}, {"collected_at": "2024-01-01T00:00:00Z"}]
    known = [list(mapping) for mapping in encoder.category_columns]
    widest = max((len(k) for k in known), default=0)
    for i in range(max(widest, 4)):
        row: dict[str, Any] = {
            "collected_at": "2024-06-01T12:00:00Z",
            "created_at": f"{2010 + i % 12}-0{1 + i % 9}-1{i % 10}T0{i % 10}:30:00Z",
            "pushed_at": "2024-05-01T00:00:00Z" if i % 3 else None,
            "updated_at": "2024-05-20T00:00:00Z" if i % 2 else None,
            "forks_count": 3**i if i % 4 else None,
            "open_issues_count": i * 7,
            "size": 1000 * i if i % 5 else None,
            "subscribers_count": i if i % 2 else None,
            "contributors_count": i + 1 if i % 3 else None,
            "commits_count": 50 * i,
            "releases_count": i % 4 if i % 2 else None,
            "owner_followers": 10**i % 10**7,
            "topics": "|".join(f"t{k}" for k in range(i % 6)) or None,
            "description": "x" * (i * 11 % 90) if i % 3 else None,
            "homepage": "https://example.org" if i % 2 else None,
        }
        for k, name in enumerate(features.FLAG_COLUMNS):
            row[name] = None if (i + k) % 5 == 0 else bool((i + k) % 2)
        for j, name in enumerate(features.CATEGORY_COLUMNS):
            choices = known[j]
            row[name] = choices[i % len(choices)] if choices and i % 7 != 6 else None
        rows.append(row)
    rows.append({**rows[-1], "language": "never-seen-language", "license_spdx": "never-seen-license",
                 "owner_type": "Bot"})
    return rows


def verify_against_pipeline(model: CompiledModel) -> None:
    """NotCompilable unless the compiled answers equal the pipeline's (rtol 1e-9) on the probe rows."""
    rows = probe_rows(model.encoder)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    for row in rows:
        row.setdefault("collected_at", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame = pd.DataFrame.from_records(rows)
    expected = reference_predict(model.pipeline, frame)
    for got in (model.predict_rows(rows), model.predict_frame(frame)):
        for name, a, b in zip(("point", "low", "high"), got, expected, strict=True):
            if not np.allclose(a, b, rtol=1e-9, atol=0.0):
                raise NotCompilable(f"compiled {name} differs from the pipeline's on probe rows")


def reference_predict(pipeline: Pipeline, frame: pd.DataFrame, *, low: float = 10.0,
                      high: float = 90.0) -> Prediction:
    """The plain scikit-learn answer (``pipeline.predict`` plus every tree's ``predict``): the reference."""
    X = features.select_input(frame)
    point = np.asarray(pipeline.predict(X), dtype=float)
    encoded = np.asarray(pipeline[:-1].transform(X))
    trees = pipeline.named_steps["model"].regressor_.estimators_
    per_tree_log = np.stack([tree.predict(encoded) for tree in trees])
    lower = np.expm1(np.percentile(per_tree_log, low, axis=0))
    upper = np.expm1(np.percentile(per_tree_log, high, axis=0))
    return np.clip(point, 0, None), np.clip(lower, 0, None), np.clip(upper, 0, None)
