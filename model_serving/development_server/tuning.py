"""Random Forest tuning with Ray Tune's ``Tuner``: one trial = one configuration cross-validated on the folds.

Why these choices:
- The training part and the folds go into Ray's object store ONCE (``tune.with_parameters``), instead of being
  pickled into every trial.
- One CPU per trial by default (the forest's ``n_jobs`` follows ``cpus_per_trial``), so Ray, not joblib,
  decides the parallelism and adding Ray nodes adds trials in flight.
- The space is bounded for deployability as much as for accuracy: a fully grown 300-tree forest pickles to
  ~137 MB; ``min_samples_leaf >= 2`` and ``n_estimators <= 250`` keep artifacts a git repository can carry.
- A failing trial is retried (``MAX_FAILURES``: a lost node must not lose its trials), then recorded (its
  error is reported) and the search goes on; only "every trial failed" stops.
- Reproducible: Optuna's TPE sampler (or the random generator) is seeded, every forest gets ``random_state``,
  and with ``max_concurrent_trials=1`` each trial sees the same history, hence the same suggestions.
- Overhead, as measured by bench/tuning.py (2 cores, 8 trials): the Tune driver spends well under a second
  of CPU per search (97 % of its time is ``ray.wait``), and with ``reuse_actors`` the next trial starts on a
  finished trial's actor within a few hundredths of a second. What remains is ~2.4 s before the first trial:
  Tune's trial actors are new processes importing Ray Tune, pandas and scikit-learn. They do not get Ray's
  prestarted workers (Tune gives its actor class its own ``runtime_env``); a job runtime_env matching it plus
  ``preload_python_modules`` was measured: no shorter start-up (2.6 s). ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``
  saved nothing measurable and breaks the ResultGrid (it reads each trial's metrics from result.json), so
  neither is used. Short searches pay that start-up; 50-trial ``train`` runs amortise it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import ray
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch
from sklearn.ensemble import RandomForestRegressor

from model_serving import features
from model_serving.development_server import protocol
from model_serving.development_server.settings import Settings

METRIC: Final = "r2_log"
#: Ray names trial directories ``<trainable>_<trial id>_<start counter>_<params>_<time>``.
_TRIAL_DIR: Final = re.compile(r"^cv_trial_([0-9a-f]{8}|[0-9a-f]{5}_\d{5})_(\d+)_")
SEARCHES: Final = ("optuna", "random")
#: Times Tune re-runs a failed trial (FailureConfig.max_failures). A Ray worker host that dies takes its
#: running trials with it; they are started again on the nodes that are left (the rehearsal's drill kills a
#: worker host mid-tuning). The price: a configuration that fails by itself is tried this many more times.
MAX_FAILURES: Final = 2


def search_space() -> dict[str, Any]:
    """Random Forest hyper-parameters (bootstrap stays on: ``max_samples`` needs it)."""
    return {
        "n_estimators": tune.randint(50, 251),
        "max_depth": tune.choice([8, 12, 16, 24, 32]),
        "min_samples_leaf": tune.randint(2, 21),
        "max_features": tune.choice([0.2, 0.33, 0.5, 0.75, 1.0]),
        "max_samples": tune.uniform(0.5, 1.0),
    }


def make_forest(params: dict[str, Any], *, seed: int, n_jobs: int = 1) -> RandomForestRegressor:
    return RandomForestRegressor(**params, bootstrap=True, random_state=seed, n_jobs=n_jobs)


def pipeline_for(params: dict[str, Any], *, seed: int, n_jobs: int = 1):  # -> Pipeline
    return features.build_pipeline(make_forest(params, seed=seed, n_jobs=n_jobs))


def cv_trial(
    config: dict[str, Any],
    *,
    X: pd.DataFrame,
    y: pd.Series,
    folds: protocol.Folds,
    seed: int,
    n_jobs: int,
) -> None:
    """The Ray Tune trainable: cross-validate one configuration and report its mean metrics once.

    It also reports which rows it was given (count and digest of the dataset positions) and where it ran, so
    the caller and the tests can prove that held-out rows never reached tuning and that trials spread over
    the cluster's nodes, and when it started (epoch seconds), so a benchmark can tell start-up and idle
    slots from work.
    """
    started_at = time.time()
    started = time.perf_counter()
    scores = protocol.cross_validate(pipeline_for(config, seed=seed, n_jobs=n_jobs), X, y, folds)
    tune.report(
        {
            **scores,
            "trial_seconds": time.perf_counter() - started,
            "started_at": started_at,
            "rows_seen": len(X),
            "rows_digest": protocol.rows_digest(X.index.to_numpy()),
            "node": ray.util.get_node_ip_address(),
        }
    )


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_cv: dict[str, float]
    trials: pd.DataFrame  # one row per trial: number, status, config, metrics, node, error
    wall_seconds: float
    search: str
    errors: list[str] = field(default_factory=list)

    @property
    def nodes_used(self) -> list[str]:
        ok = self.trials[self.trials["status"] == "ok"]
        return sorted(ok["node"].dropna().unique().tolist())


def _search_algorithm(
    search: str, seed: int, max_concurrent: int | None, *, trials: int, cpus_per_trial: float
) -> tuple[Any, int | None]:
    """The search algorithm, and the ``max_concurrent_trials`` to give the Tuner alongside it.

    Random search is a ``SearchGenerator``, for which Tune ignores ``max_concurrent_trials`` (with a
    warning), so its own ``max_concurrent`` carries an explicit limit; by default it has none (0), as its
    variants, grid ones included (``trials`` x the grid), are all known up front. Optuna is a ``Searcher``,
    which Tune wraps in a ``ConcurrencyLimiter`` from ``max_concurrent_trials``.
    """
    if search == "optuna":
        import optuna

        if max_concurrent is None:
            # Ray Tune lets a non-random searcher keep only ONE trial pending unless a concurrency limit is
            # set, which serialises short trials; allow as many in flight as the cluster has trial slots.
            slots = int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial)
            max_concurrent = max(1, min(slots, trials))
        return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed)), max_concurrent
    if search == "random":
        return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent or 0), None
    raise ValueError(f"unknown search {search!r}: one of {', '.join(SEARCHES)}")


def run_tuning(
    prepared: protocol.Prepared,
    *,
    trials: int,
    seed: int,
    cpus_per_trial: float = 1,
    max_concurrent: int | None = None,
    search: str = "optuna",
    space: dict[str, Any] | None = None,
    verbose: int = 1,
    reuse_actors: bool = True,
) -> TuningResult:
    """Run the search on the training part only; the held-out part is not even passed in."""
    if trials < 1:
        raise ValueError("trials must be >= 1")
    n_jobs = max(1, int(cpus_per_trial))
    search_alg, max_concurrent_trials = _search_algorithm(
        search, seed, max_concurrent, trials=trials, cpus_per_trial=cpus_per_trial
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            cv_trial, X=prepared.X_train, y=prepared.y_train, folds=prepared.folds, seed=seed, n_jobs=n_jobs
        ),
        {"cpu": cpus_per_trial},
    )
    configured = Settings.from_env().ray_results
    storage = configured or Path(tempfile.mkdtemp(prefix="sg-tune-"))
    tuner = tune.Tuner(
        trainable,
        param_space=space if space is not None else search_space(),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=trials,
            search_alg=search_alg,
            max_concurrent_trials=max_concurrent_trials,
            # A trial is one report: reusing its actor saves a process start per trial. The catch: a cached
            # actor may take a trial whose own actor is still starting on another node.
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=f"rf-{time.strftime('%Y%m%dT%H%M%S')}-{seed}",
            storage_path=str(storage),
            verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES, fail_fast=False),
        ),
    )
    started = time.perf_counter()
    try:
        grid = tuner.fit()
        wall = time.perf_counter() - started
        table, errors = _trial_table(grid)
    finally:
        if configured is None:
            shutil.rmtree(storage, ignore_errors=True)
    ok = table[table["status"] == "ok"]
    if ok.empty:
        raise RuntimeError(
            f"tuning: all {len(table)} trials failed; first error: {errors[0] if errors else '?'}"
        )
    best = ok.sort_values([METRIC, "number"], ascending=[False, True]).iloc[0]
    best_params = {name: _plain(best[f"config/{name}"]) for name in _config_names(table)}
    best_cv = {name: float(best[name]) for name in protocol.METRIC_NAMES}
    return TuningResult(best_params, best_cv, table, wall, search, errors)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _config_names(table: pd.DataFrame) -> list[str]:
    return [c.removeprefix("config/") for c in table.columns if c.startswith("config/")]


def _trial_table(grid: tune.ResultGrid) -> tuple[pd.DataFrame, list[str]]:
    """Trials in start order (Ray names them with increasing counters); errored ones kept with their error."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for result in grid:
        row: dict[str, Any] = {f"config/{k}": _plain(v) for k, v in (result.config or {}).items()}
        metrics = result.metrics or {}
        if result.error is not None:
            message = str(result.error).strip().splitlines()[-1][:300]
            errors.append(message)
            row |= {"status": "error", "error": message}
        else:
            row |= {"status": "ok", "error": None}
        for key in (
            *protocol.METRIC_NAMES,
            "r2_log_std",
            "fit_seconds",
            "trial_seconds",
            "started_at",
            "rows_seen",
            "rows_digest",
            "node",
            "trial_id",
        ):
            row[key] = metrics.get(key)
        match = _TRIAL_DIR.match(Path(result.path).name if result.path else "")
        row["trial_id"] = row["trial_id"] or (match.group(1) if match else None)
        row["order"] = int(match.group(2)) if match else len(rows)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("order").reset_index(drop=True)
    table["number"] = np.arange(len(table))
    return table.drop(columns=["order"]), errors
