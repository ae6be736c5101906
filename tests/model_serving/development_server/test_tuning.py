"""How run_tuning hands the concurrency limit to each search algorithm (no Ray cluster needed)."""

from __future__ import annotations

import pytest
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from model_serving.development_server import tuning


def test_random_search_carries_an_explicit_limit_itself() -> None:
    """Tune ignores max_concurrent_trials for a SearchGenerator, so the generator must hold the limit."""
    search, tuner_limit = tuning._search_algorithm("random", 0, 1, trials=4, cpus_per_trial=1)
    assert isinstance(search, BasicVariantGenerator) and search.max_concurrent == 1
    assert tuner_limit is None


def test_random_search_is_unlimited_by_default() -> None:
    """Its variants (grids included) are known up front: the cluster's slots are the only limit."""
    search, tuner_limit = tuning._search_algorithm("random", 0, None, trials=1, cpus_per_trial=1)
    assert search.max_concurrent == 0 and tuner_limit is None


def test_optuna_gets_its_limit_from_the_tuner() -> None:
    search, tuner_limit = tuning._search_algorithm("optuna", 0, 1, trials=4, cpus_per_trial=1)
    assert isinstance(search, OptunaSearch) and tuner_limit == 1


def test_unknown_search_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown search"):
        tuning._search_algorithm("grid", 0, None, trials=1, cpus_per_trial=1)
