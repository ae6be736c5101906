"""The protocol's pieces: a seeded held-out split cut first, shared folds, honest metrics."""

from __future__ import annotations

import numpy as np
import pytest

from model_serving.development_server import protocol
from synthetic.dataset import synthetic_dataset


def test_holdout_split_is_seeded_and_disjoint() -> None:
    a = protocol.holdout_split(100, test_size=0.2, seed=4)
    b = protocol.holdout_split(100, test_size=0.2, seed=4)
    c = protocol.holdout_split(100, test_size=0.2, seed=5)
    np.testing.assert_array_equal(a.holdout, b.holdout)
    assert not np.array_equal(a.holdout, c.holdout)
    assert len(a.holdout) == 20 and not set(a.train) & set(a.holdout)
    assert sorted([*a.train, *a.holdout]) == list(range(100))


def test_prepare_keeps_holdout_out_of_training_inputs() -> None:
    data = synthetic_dataset(60)
    prepared = protocol.prepare(data, test_size=0.25, folds=3, seed=0)
    assert not set(prepared.X_train.index) & set(prepared.X_holdout.index)
    assert set(prepared.holdout_names) == set(data.loc[prepared.split.holdout, "full_name"])
    assert "stargazers_count" not in prepared.X_train.columns
    covered = np.concatenate([valid for _, valid in prepared.folds])
    assert sorted(covered) == list(range(len(prepared.X_train)))


def test_metrics() -> None:
    y = np.array([10.0, 100.0, 1000.0, 10000.0])
    perfect = protocol.regression_metrics(y, y)
    assert perfect["r2"] == pytest.approx(1) and perfect["r2_log"] == pytest.approx(1)
    assert perfect["mae"] == 0 and perfect["spearman"] == pytest.approx(1)
    constant = protocol.regression_metrics(y, np.full(4, 50.0))
    assert constant["spearman"] == 0.0 and constant["r2_log"] < 0.5
    clipped = protocol.regression_metrics(y, np.array([-5.0, 100, 1000, 10000]))
    assert np.isfinite(clipped["r2_log"])


def test_rows_digest_is_order_free() -> None:
    assert protocol.rows_digest([3, 1, 2]) == protocol.rows_digest(np.array([1, 2, 3]))
    assert protocol.rows_digest([1, 2]) != protocol.rows_digest([1, 2, 3])
