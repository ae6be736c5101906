"""compiled_pipeline.py: the compiled inference path answers exactly what the scikit-learn pipeline answers.

The reference everywhere is ``compiled_pipeline.reference_predict``: ``pipeline.predict`` for the point and
every tree's own ``predict`` for the band. Tolerances are tight (rtol 1e-12; most comparisons are exact), on
many rows: synthetic, fuzzed JSON values, missing enrichment, unseen and infrequent categories, NaNs, and the
genuine GitHub rows of ../shared/data when present.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.neighbors import KNeighborsRegressor

from data_collection.schema import ENRICHMENT_COLUMNS
from model_serving import features
from model_serving.production_server import compiled_pipeline
from model_serving.production_server.model_store import ModelStore
from synthetic.dataset import synthetic_dataset
from synthetic.versions import build_tiny_version
from tests.support import RAW_API_PAGES, require_shared_data

COLLECTED = "2026-11-01T00:00:00Z"
RTOL = 1e-12

#: 60 languages with frequencies from 1 to ~60 rows: some frequent, some below min_frequency, and more than
#: max_categories distinct ones, so the infrequent bucket is fed by both rules.
LANGUAGES = [f"lang{k}" for k in range(60)]


def varied_dataset(rows: int, seed: int) -> pd.DataFrame:
    """Synthetic rows with what real data has: missing enrichment, rare categories, empty values."""
    rng = np.random.default_rng(seed)
    data = synthetic_dataset(rows, seed)
    weights = np.linspace(1.0, 0.02, len(LANGUAGES))
    data["language"] = rng.choice(np.array(LANGUAGES, dtype=object), rows, p=weights / weights.sum())
    data.loc[rng.random(rows) < 0.1, "language"] = None
    data["license_spdx"] = rng.choice(np.array(["mit", "apache-2.0", "gpl-3.0", "bsd-3-clause", "0bsd"],
                                               dtype=object), rows, p=[0.5, 0.3, 0.15, 0.04, 0.01])
    for column in ENRICHMENT_COLUMNS:  # enrichment unknown for a third of the rows: indicator columns
        data[column] = data[column].astype(object)
        data.loc[rng.random(rows) < 0.33, column] = None
    data.loc[rng.random(rows) < 0.2, "pushed_at"] = None
    data.loc[rng.random(rows) < 0.2, "has_wiki"] = None
    return data


def fit(regressor: Any, data: pd.DataFrame, **encoder_options: int) -> Any:
    pipeline = features.build_pipeline(regressor, **encoder_options)
    pipeline.fit(features.select_input(data), features.target_of(data))
    return pipeline


@pytest.fixture(scope="module")
def forest_pipeline() -> Any:
    return fit(RandomForestRegressor(n_estimators=40, max_depth=14, min_samples_leaf=2, max_features=0.5,
                                     random_state=0, n_jobs=1), varied_dataset(1500, seed=5))


@pytest.fixture(scope="module")
def deep_extra_trees() -> Any:
    """Fully grown trees (no depth limit) and another forest class, with an all-empty training column."""
    data = varied_dataset(600, seed=9)
    data["owner_type"] = None
    data["owner_followers"] = None
    return fit(ExtraTreesRegressor(n_estimators=15, random_state=1, n_jobs=1), data)


@pytest.fixture(scope="module")
def compiled(forest_pipeline: Any) -> compiled_pipeline.CompiledModel:
    return compiled_pipeline.compile_pipeline(forest_pipeline)


def assert_same(got: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    for name, a, b in zip(("point", "p10", "p90"), got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0, err_msg=name)


def as_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as the JSON values a worker receives (no NumPy scalars, None for missing)."""
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and value != value:
                value = None
            row[key] = value
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------
# the feature step
# ----------------------------------------------------------------------------------------------------------


def _random_time(rng: random.Random) -> Any:
    moment = datetime(2008, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 19 * 365 * 86400))
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return moment.strftime("%Y-%m-%d")
    if kind == 2:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")  # no zone: UTC
    if kind == 3:
        digits = rng.randrange(1, 7)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + str(rng.randrange(10**digits)).zfill(digits) + "Z"
    if kind == 4:
        sign = rng.choice("+-")
        offset = f"{sign}{rng.randrange(15):02d}:{rng.choice([0, 30, 45]):02d}"
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def random_row(rng: random.Random, categories: list[list[str]]) -> dict[str, Any]:
    """One JSON row with values of every kind the web tier, the normaliser or a hand-made request send."""
    row: dict[str, Any] = {"collected_at": _random_time(rng) or COLLECTED}
    for name in ("created_at", "pushed_at", "updated_at"):
        if rng.random() < 0.9:
            row[name] = _random_time(rng)
    for name in features.COUNT_COLUMNS:
        kind = rng.randrange(8)
        if kind == 0:
            continue  # key absent
        row[name] = [None, rng.randrange(10**rng.randrange(1, 10)), -rng.randrange(100), 0,
                     rng.random() * 1000, float(rng.randrange(5000)), 2**53, rng.randrange(50)][kind]
    for name in features.FLAG_COLUMNS:
        row[name] = rng.choice([True, False, None, 0, 1, 2, 1.0, 0.5, "true", "No", " yes ", "maybe", ""])
    row["topics"] = rng.choice([None, "", "a|b", "a||b |", " ", ["x", "y"], [], "one"])
    row["description"] = rng.choice([None, "", "a tool", "x" * 300, " "])
    row["homepage"] = rng.choice([None, "", "https://example.org"])
    for j, name in enumerate(features.CATEGORY_COLUMNS):
        row[name] = rng.choice([*categories[j], None, "", "  ", "never-seen", "Python "])
    return row


def assert_features_equal(pipeline: Any, rows: list[dict[str, Any]]) -> None:
    fast = compiled_pipeline.fast_features(rows)
    assert fast is not None
    numeric, categories = fast
    ref_numeric, ref_categories = compiled_pipeline.pandas_features(pipeline, pd.DataFrame.from_records(rows))
    np.testing.assert_array_equal(numeric, ref_numeric)  # bit for bit, NaN where NaN
    assert categories == ref_categories


def test_fast_features_equal_the_pandas_step_on_fuzzed_rows(
    forest_pipeline: Any, compiled: compiled_pipeline.CompiledModel
) -> None:
    """Batches of 1-8 rows (pandas infers each column's dtype from the batch, so mixtures matter)."""
    rng = random.Random(11)
    categories = [list(m) for m in compiled.encoder.category_columns]
    batches = 0
    for _ in range(400):
        rows = [random_row(rng, categories) for _ in range(rng.randrange(1, 9))]
        assert_features_equal(forest_pipeline, rows)
        batches += 1
    assert batches == 400


def test_fast_features_equal_on_the_served_row_shapes(forest_pipeline: Any) -> None:
    """What inputs.py sends (every dataset column, None for unknown) and the benchmark's request rows."""
    data = varied_dataset(300, seed=21)
    rows = as_rows(data)
    assert_features_equal(forest_pipeline, rows)
    for size in (1, 5, 100):
        assert_features_equal(forest_pipeline, rows[:size])


def test_missing_collected_at_uses_now(forest_pipeline: Any) -> None:
    rows = as_rows(varied_dataset(20, seed=2))
    for row in rows:
        row.pop("collected_at")
    numeric, _ = compiled_pipeline.fast_features(rows)  # type: ignore[misc]
    ref, _ = compiled_pipeline.pandas_features(forest_pipeline, pd.DataFrame.from_records(rows))
    # The two "now"s are a few milliseconds apart: equal to ~1e-6 days.
    np.testing.assert_allclose(numeric, ref, rtol=1e-9, atol=1e-5)
    fixed = datetime(2026, 11, 1, tzinfo=UTC)
    with_now, _ = compiled_pipeline.fast_features(rows, now=fixed)  # type: ignore[misc]
    for row in rows:
        row["collected_at"] = COLLECTED
    explicit, _ = compiled_pipeline.fast_features(rows)  # type: ignore[misc]
    np.testing.assert_array_equal(with_now, explicit)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("created_at", "2018-03-01T00:00:00.1234567Z"),  # nanoseconds: pandas switches the unit
        ("created_at", "2018-02-30T00:00:00Z"),  # invalid date (pandas: NaT)
        ("created_at", "2018-03-01T24:00:00Z"),
        ("pushed_at", "2018-03-01T00:00:00+0200"),  # spellings not reproduced
        ("pushed_at", "March 1st"),
        ("created_at", "0900-01-01T00:00:00Z"),  # spans beyond 2**53 microseconds
        ("forks_count", "12"),  # counts as text, booleans, huge integers
        ("forks_count", True),
        ("commits_count", 2**60),
        ("size", float("inf")),
    ],
)
def test_fast_features_decline_what_they_do_not_reproduce(
    forest_pipeline: Any, compiled: compiled_pipeline.CompiledModel, column: str, value: Any
) -> None:
    rows = as_rows(varied_dataset(5, seed=4))
    rows[2][column] = value
    assert compiled_pipeline.fast_features(rows) is None
    frame = pd.DataFrame.from_records(rows)
    if value == float("inf"):  # scikit-learn refuses infinity; so does the compiled path
        with pytest.raises(ValueError, match="infinity"):
            compiled_pipeline.reference_predict(forest_pipeline, frame)
        with pytest.raises(ValueError, match="infinity"):
            compiled.predict_rows(rows)
        return
    # The rows still get the reference answer: through the pandas step, then compiled.
    assert_same(compiled.predict_rows(rows), compiled_pipeline.reference_predict(forest_pipeline, frame))


# ----------------------------------------------------------------------------------------------------------
# encoder, forest, whole model
# ----------------------------------------------------------------------------------------------------------


def test_encoder_equals_the_column_transformer(forest_pipeline: Any,
                                               compiled: compiled_pipeline.CompiledModel) -> None:
    encoder = compiled.encoder
    assert len(encoder.indicator_columns) > 0, "the fixture must exercise missing indicators"
    assert any(column >= 0 for column in encoder.unknown_columns), "and an infrequent bucket"
    rng = random.Random(3)
    categories = [list(m) for m in encoder.category_columns]
    rows = [random_row(rng, categories) for _ in range(500)]
    frame = pd.DataFrame.from_records(rows)
    expected = np.asarray(forest_pipeline[:-1].transform(features.select_input(frame)))
    got = encoder.transform(*compiled_pipeline.pandas_features(forest_pipeline, frame))
    np.testing.assert_array_equal(got, expected)


def test_forest_walk_equals_every_tree(forest_pipeline: Any,
                                       compiled: compiled_pipeline.CompiledModel) -> None:
    data = varied_dataset(400, seed=8)
    encoded = np.asarray(forest_pipeline[:-1].transform(features.select_input(data)))
    trees = forest_pipeline.named_steps["model"].regressor_.estimators_
    expected = np.stack([tree.predict(encoded) for tree in trees])
    np.testing.assert_array_equal(compiled.forest.per_tree(encoded), expected)


def test_forest_walk_follows_scikit_learn_on_nan(compiled: compiled_pipeline.CompiledModel,
                                                 forest_pipeline: Any) -> None:
    """The encoder never emits NaN, but the walk still takes each node's missing-value branch as sklearn."""
    data = varied_dataset(50, seed=8)
    encoded = np.asarray(forest_pipeline[:-1].transform(features.select_input(data)))
    encoded[::3, ::2] = np.nan
    trees = forest_pipeline.named_steps["model"].regressor_.estimators_
    expected = np.stack([tree.predict(encoded) for tree in trees])
    np.testing.assert_array_equal(compiled.forest.per_tree(encoded), expected)


def test_compiled_model_equals_the_pipeline_on_many_rows(forest_pipeline: Any,
                                                         compiled: compiled_pipeline.CompiledModel) -> None:
    data = varied_dataset(1000, seed=13)
    expected = compiled_pipeline.reference_predict(forest_pipeline, data)
    assert_same(compiled.predict_frame(data), expected)
    assert_same(compiled.predict_rows(as_rows(data)), expected)
    # Rows in small batches, as requests arrive.
    rows = as_rows(data)
    for start in range(0, 100, 5):
        batch = rows[start : start + 5]
        assert_same(compiled.predict_rows(batch),
                    compiled_pipeline.reference_predict(forest_pipeline, pd.DataFrame.from_records(batch)))


def test_missing_enrichment_unseen_and_infrequent_categories(
    forest_pipeline: Any, compiled: compiled_pipeline.CompiledModel
) -> None:
    data = varied_dataset(200, seed=17)
    for column in ENRICHMENT_COLUMNS:
        data[column] = None
    data.loc[::2, "language"] = "Brainfuck++"  # never seen
    data.loc[1::4, "language"] = "lang59"  # seen, but rare: the infrequent bucket
    data.loc[3::4, "license_spdx"] = None
    data.loc[::5, "owner_type"] = "Enterprise"
    data.loc[::7, ["created_at", "pushed_at", "updated_at"]] = None
    expected = compiled_pipeline.reference_predict(forest_pipeline, data)
    assert_same(compiled.predict_rows(as_rows(data)), expected)


def test_fuzzed_rows_predict_like_the_pipeline(forest_pipeline: Any,
                                               compiled: compiled_pipeline.CompiledModel) -> None:
    rng = random.Random(29)
    categories = [list(m) for m in compiled.encoder.category_columns]
    rows = [random_row(rng, categories) for _ in range(600)]
    assert_same(compiled.predict_rows(rows),
                compiled_pipeline.reference_predict(forest_pipeline, pd.DataFrame.from_records(rows)))


def test_point_is_bit_identical_to_pipeline_predict(forest_pipeline: Any,
                                                    compiled: compiled_pipeline.CompiledModel) -> None:
    """Same accumulation order as ForestRegressor.predict, same inverse function: not merely close."""
    data = varied_dataset(300, seed=31)
    point, _, _ = compiled.predict_rows(as_rows(data))
    expected = np.clip(forest_pipeline.predict(features.select_input(data)), 0, None)
    np.testing.assert_array_equal(point, expected)


def test_unlimited_depth_extra_trees_and_empty_training_columns(deep_extra_trees: Any) -> None:
    model = compiled_pipeline.compile_pipeline(deep_extra_trees)
    assert model.forest.depth > 16
    data = varied_dataset(500, seed=41)
    data.loc[::3, "owner_type"] = "User"  # never seen: the training column was empty
    assert_same(model.predict_rows(as_rows(data)),
                compiled_pipeline.reference_predict(deep_extra_trees, data))


def test_features_predict_with_interval_uses_compiled_or_one_pass(
    forest_pipeline: Any, compiled: compiled_pipeline.CompiledModel
) -> None:
    data = varied_dataset(120, seed=43)
    expected = compiled_pipeline.reference_predict(forest_pipeline, data)
    assert_same(features.predict_with_interval(forest_pipeline, data, compiled=compiled), expected)
    assert_same(features.predict_with_interval(forest_pipeline, data), expected)  # scikit-learn, one pass


@pytest.mark.parametrize("regressor", [HistGradientBoostingRegressor(max_iter=20, random_state=0),
                                       KNeighborsRegressor(n_neighbors=3)])
def test_other_regressors_are_not_compiled_and_fall_back(regressor: Any) -> None:
    data = varied_dataset(200, seed=47)
    pipeline = fit(regressor, data)
    with pytest.raises(compiled_pipeline.NotCompilable, match="not a forest"):
        compiled_pipeline.compile_pipeline(pipeline)
    point, low, high = features.predict_with_interval(pipeline, data.head(10))
    expected = np.asarray(pipeline.predict(features.select_input(data.head(10))))
    np.testing.assert_array_equal(point, expected)
    np.testing.assert_array_equal(low, point)
    np.testing.assert_array_equal(high, point)


def test_verification_refuses_a_compilation_that_differs(forest_pipeline: Any,
                                                         compiled: compiled_pipeline.CompiledModel) -> None:
    """The self-check at compile time is what stands between a changed scikit-learn and wrong answers."""
    skewed_scale = compiled.encoder.scale * 1.5
    broken_encoder = compiled_pipeline.CompiledEncoder(**{**compiled.encoder.__dict__, "scale": skewed_scale})
    broken = compiled_pipeline.CompiledModel(forest_pipeline, broken_encoder, compiled.forest,
                                             compiled.inverse)
    with pytest.raises(compiled_pipeline.NotCompilable, match="differs"):
        compiled_pipeline.verify_against_pipeline(broken)


# ----------------------------------------------------------------------------------------------------------
# the worker's model store and genuine rows
# ----------------------------------------------------------------------------------------------------------


def test_model_store_compiles_once_per_loaded_model(tmp_path: Path) -> None:
    from model_serving import releases

    version = build_tiny_version(tmp_path / "models", n_estimators=8)
    releases.install_release(version, tmp_path / "production", actor="test", move=False)
    store = ModelStore(tmp_path / "production" / "current", None, require_signature=False)
    model = store.get()
    assert isinstance(model.compiled, compiled_pipeline.CompiledModel)
    assert store.get().compiled is model.compiled  # cached with the model, not rebuilt per task
    rows = as_rows(synthetic_dataset(30, seed=7))
    assert_same(model.compiled.predict_rows(rows),
                compiled_pipeline.reference_predict(model.pipeline, pd.DataFrame.from_records(rows)))


@pytest.mark.shared_data
def test_genuine_github_rows(forest_pipeline: Any, compiled: compiled_pipeline.CompiledModel) -> None:
    """The 1,000 real repositories of the saved search pages, through the data collection's normaliser,
    both predicted by the synthetic model and used to train a model of their own (real languages, licences
    and missing enrichment)."""
    from data_collection.normalize import rows_from_search_pages

    rows = rows_from_search_pages(sorted(require_shared_data(RAW_API_PAGES).glob("*.json")))
    frame = pd.DataFrame.from_records(rows)
    assert_features_equal(forest_pipeline, rows)
    assert_same(compiled.predict_rows(rows), compiled_pipeline.reference_predict(forest_pipeline, frame))

    real = fit(RandomForestRegressor(n_estimators=30, min_samples_leaf=2, random_state=0, n_jobs=1), frame)
    model = compiled_pipeline.compile_pipeline(real)
    assert any(column >= 0 for column in model.encoder.unknown_columns)  # real languages: infrequent bucket
    assert_same(model.predict_rows(rows), compiled_pipeline.reference_predict(real, frame))
    for start in range(0, 200, 5):
        batch = rows[start : start + 5]
        assert_same(model.predict_rows(batch),
                    compiled_pipeline.reference_predict(real, pd.DataFrame.from_records(batch)))
