"""features.py: one Pipeline on raw columns; missing enrichment, unseen categories handled; target-blind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from data_collection.schema import ENRICHMENT_COLUMNS
from model_serving import features
from model_serving.production_server import compiled_pipeline
from synthetic.dataset import synthetic_dataset


@pytest.fixture(scope="module")
def fitted() -> tuple[object, pd.DataFrame]:
    data = synthetic_dataset(200, seed=3)
    pipeline = features.build_pipeline(RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1))
    pipeline.fit(features.select_input(data), features.target_of(data))
    return pipeline, data


def test_raw_row_with_missing_enrichment_and_unseen_language(fitted) -> None:
    pipeline, data = fitted
    row = data.iloc[[0]].copy()
    for column in ENRICHMENT_COLUMNS:
        row[column] = None
    row["language"] = "Brainfuck++"  # never seen in training
    row["license_spdx"] = None
    point, low, high = features.predict_with_interval(pipeline, row)
    assert np.isfinite(point).all() and point[0] > 0
    assert low[0] <= point[0] <= high[0] or np.isclose(low[0], high[0])


def test_row_missing_whole_columns_is_accepted(fitted) -> None:
    pipeline, data = fitted
    minimal = data.loc[[0, 1], ["forks_count", "created_at", "pushed_at", "language"]]
    assert np.isfinite(pipeline.predict(features.select_input(minimal))).all()


def test_watchers_count_is_dropped_and_never_used(fitted) -> None:
    pipeline, data = fitted
    frame = data.head(30).copy()
    frame["watchers_count"] = frame["stargazers_count"]
    frame["watchers"] = frame["stargazers_count"]
    assert "watchers_count" not in features.select_input(frame).columns
    assert "stargazers_count" not in features.select_input(frame).columns
    shuffled = frame.copy()
    shuffled["watchers_count"] = (
        np.random.default_rng(0).permutation(frame["watchers_count"].to_numpy()) * 1000
    )
    shuffled["stargazers_count"] = 1
    base, _, _ = features.predict_with_interval(pipeline, frame)
    moved, _, _ = features.predict_with_interval(pipeline, shuffled)
    np.testing.assert_array_equal(base, moved)
    # Even when the raw transformer is handed the alias directly, no feature reads it.
    direct = features.RepositoryFeatures().transform(shuffled)
    pd.testing.assert_frame_equal(direct, features.RepositoryFeatures().transform(frame))


def test_typed_dataset_frame_gives_same_features_as_text(tmp_path) -> None:
    """read_dataset's nullable dtypes (Int64, boolean, datetime) and raw strings give identical features."""
    dataset = pytest.importorskip("data_collection.dataset")
    data = synthetic_dataset(40, seed=5)
    data["subscribers_count"] = data["subscribers_count"].astype("Int64")
    data.loc[3, "subscribers_count"] = pd.NA
    path = tmp_path / "repos.csv"
    data.to_csv(path, index=False)
    typed = dataset.read_dataset(path)
    text = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
    a = features.RepositoryFeatures().transform(typed)
    b = features.RepositoryFeatures().transform(text)
    numeric = features.numeric_feature_names()
    np.testing.assert_allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), equal_nan=True)
    assert a["log_subscribers_count"].dtype == np.float64 and np.isnan(a.loc[3, "log_subscribers_count"])


def test_categories_are_one_hot_not_ordinal(fitted) -> None:
    pipeline, _ = fitted
    names = list(pipeline.named_steps["encode"].get_feature_names_out())
    assert any(n.startswith("language_") for n in names)
    assert "language" not in names


def test_ages_are_measured_against_collected_at() -> None:
    row = pd.DataFrame({"created_at": ["2020-01-01T00:00:00Z"], "collected_at": ["2021-01-01T00:00:00Z"]})
    out = features.RepositoryFeatures().transform(row)
    assert out.loc[0, "age_days"] == pytest.approx(366.0)


def test_interval_is_ordered_but_need_not_contain_the_point() -> None:
    """The interval is the 10th-90th percentile of the trees' predictions; the point is their mean (in log
    space). p10 <= p90 always, but a mean is not a percentile: when one tree of twenty saw an outlier, the
    mean moves while p90 does not, and the point lies above the interval. Served answers (compiled path)
    and scikit-learn's path say the same."""
    data = synthetic_dataset(200, seed=0)
    data["stargazers_count"] = 100
    data.loc[0, "stargazers_count"] = 10_000_000
    forest = RandomForestRegressor(n_estimators=20, max_samples=0.05, random_state=1, n_jobs=1)
    pipeline = features.build_pipeline(forest)
    pipeline.fit(features.select_input(data), features.target_of(data))
    encoded = np.asarray(pipeline[:-1].transform(features.select_input(data.head(1))))
    per_tree = [tree.predict(encoded)[0] for tree in pipeline.named_steps["model"].regressor_.estimators_]
    assert sum(value > np.log1p(1000) for value in per_tree) == 1  # the setting this test is about

    compiled = compiled_pipeline.compile_pipeline(pipeline)
    for answer in (features.predict_with_interval(pipeline, data.head(1)),
                   features.predict_with_interval(pipeline, data.head(1), compiled=compiled)):
        point, low, high = (float(a[0]) for a in answer)
        assert low == pytest.approx(100) and high == pytest.approx(100)
        assert point > high  # outside the interval, and rightly so: the mean of the trees

    point, low, high = features.predict_with_interval(pipeline, synthetic_dataset(300, seed=7))
    assert (low <= high).all()
