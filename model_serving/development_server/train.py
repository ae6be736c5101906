"""The whole development run: load, split, screen, tune, baselines, final fit, held-out, artifact.

The order IS the protocol (see ``protocol``): the held-out rows are cut before anything else, are never passed
to screening, tuning or the baselines' cross-validation, and the final model is scored on them exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from model_serving import artifact, features
from model_serving.development_server import plots, protocol, report, screening, tuning
from model_serving.development_server.cluster import ClusterInfo, ray_session
from model_serving.development_server.data import TrainingData, load_training_data

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    data: Path
    out: Path
    trials: int = 50
    seed: int = 0
    folds: int = 5
    test_size: float = 0.2
    cpus_per_trial: float = 1
    max_concurrent: int | None = None
    search: str = "optuna"
    num_cpus: int | None = None  # only for a private local cluster
    skip_screening: bool = False
    min_nodes: int = 1
    reuse_actors: bool = True


@dataclass(frozen=True)
class TrainOutcome:
    version_dir: Path
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    params: dict[str, Any]


def default_rf_raw(seed: int) -> Pipeline:
    """What the replaced projects did, made leak-free: same features, default forest, RAW stars (no log)."""
    return Pipeline(
        [
            ("features", features.RepositoryFeatures()),
            ("encode", features.build_encoder()),
            ("model", RandomForestRegressor(random_state=seed, n_jobs=1)),
        ]
    )


def median_baseline() -> Pipeline:
    return features.build_pipeline(DummyRegressor(strategy="median"))


@ray.remote(num_cpus=1)
def _cv_remote(estimator: object, X: pd.DataFrame, y: pd.Series, folds: protocol.Folds) -> dict[str, float]:
    return protocol.cross_validate(estimator, X, y, folds)


def run_baselines(prepared: protocol.Prepared, seed: int) -> dict[str, dict[str, float]]:
    """The median and a default RF on raw stars, cross-validated on the SAME folds, in parallel on Ray."""
    X_ref, y_ref, folds_ref = ray.put(prepared.X_train), ray.put(prepared.y_train), ray.put(prepared.folds)
    refs = {
        "median": _cv_remote.remote(median_baseline(), X_ref, y_ref, folds_ref),
        "default_rf_raw": _cv_remote.remote(default_rf_raw(seed), X_ref, y_ref, folds_ref),
    }
    return {name: ray.get(ref) for name, ref in refs.items()}


def fit_final(prepared: protocol.Prepared, params: dict[str, Any], seed: int) -> Pipeline:
    """Refit on the whole training part; the saved forest predicts with n_jobs=1 (serving: per process)."""
    pipeline = tuning.pipeline_for(params, seed=seed, n_jobs=-1)
    pipeline.fit(prepared.X_train, prepared.y_train)
    pipeline.set_params(model__regressor__n_jobs=1)
    pipeline.named_steps["model"].regressor_.set_params(n_jobs=1)
    return pipeline


def _r2_log_scorer(estimator: Pipeline, X: pd.DataFrame, y: pd.Series) -> float:
    return protocol.regression_metrics(y.to_numpy(), estimator.predict(X))["r2_log"]


def holdout_importance(pipeline: Pipeline, prepared: protocol.Prepared, seed: int) -> pd.DataFrame:
    """Permutation importance of each RAW input column on the held-out part (after its single scoring)."""
    result = permutation_importance(
        pipeline,
        prepared.X_holdout,
        prepared.y_holdout,
        scoring=_r2_log_scorer,
        n_repeats=5,
        random_state=seed,
        n_jobs=1,
    )
    return (
        pd.DataFrame(
            {
                "column": prepared.X_holdout.columns,
                "mean": result.importances_mean,
                "std": result.importances_std,
            }
        )
        .sort_values("mean", ascending=False)
        .reset_index(drop=True)
    )


def load(options: RunOptions, echo: Echo) -> tuple[TrainingData, protocol.Prepared]:
    data = load_training_data(options.data, folds=options.folds, test_size=options.test_size)
    if data.ignored_columns:
        echo(f"ignoring {', '.join(data.ignored_columns)}: alias of the target, never a feature")
    prepared = protocol.prepare(
        data.frame, test_size=options.test_size, folds=options.folds, seed=options.seed
    )
    echo(
        f"dataset {options.data}: {data.rows} rows -> {len(prepared.split.train)} training, "
        f"{len(prepared.split.holdout)} held out (seed {options.seed}), {options.folds} folds"
    )
    return data, prepared


@contextmanager
def cluster_session(options: RunOptions, echo: Echo) -> Iterator[ClusterInfo]:
    """The Ray cluster of one run (``RAY_ADDRESS``'s, or a private local one), named on the terminal."""
    with ray_session(num_cpus=options.num_cpus, min_nodes=options.min_nodes) as cluster:
        echo(f"ray: {cluster.address}, {cluster.nodes} node(s), {cluster.cpus:g} CPUs")
        yield cluster


def tune(prepared: protocol.Prepared, options: RunOptions) -> tuning.TuningResult:
    """Ray Tune over the training part with the run's search settings (inside ``cluster_session``)."""
    return tuning.run_tuning(
        prepared,
        trials=options.trials,
        seed=options.seed,
        cpus_per_trial=options.cpus_per_trial,
        max_concurrent=options.max_concurrent,
        search=options.search,
        reuse_actors=options.reuse_actors,
    )


def write_screening(table: pd.DataFrame, directory: Path) -> Path:
    """screening.{csv,md,png} in ``directory``; returns the CSV's path."""
    csv_path, _ = screening.write_table(table, directory)
    plots.screening_chart(table, directory / "screening.png")
    return csv_path


def write_trials(tuned: tuning.TuningResult, directory: Path) -> Path:
    """trials.csv and tuning.png in ``directory``; returns the CSV's path."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "trials.csv"
    tuned.trials.to_csv(csv_path, index=False)
    plots.tuning_chart(tuned.trials, directory / "tuning.png")
    return csv_path


def train(options: RunOptions, echo: Echo = print) -> TrainOutcome:
    data, prepared = load(options, echo)
    with cluster_session(options, echo) as cluster:
        table = None
        if not options.skip_screening:
            echo("== screening model families (Ray tasks, same folds)")
            table = screening.run_screening(prepared, seed=options.seed)
            echo(screening.markdown_table(table))
        echo(f"== tuning the Random Forest: {options.trials} trials, {options.search} search")
        tuned = tune(prepared, options)
        for message in tuned.errors:
            echo(f"tuning: a trial failed (reported, not fatal): {message}")
        echo(f"best CV r2_log {tuned.best_cv['r2_log']:.4f} with {json.dumps(tuned.best_params)}")
        echo("== baselines on the same folds")
        baselines = run_baselines(prepared, options.seed)
    return finish(options, data, prepared, cluster=cluster, table=table, tuned=tuned, baselines=baselines,
                  echo=echo)


def finish(
    options: RunOptions,
    data: TrainingData,
    prepared: protocol.Prepared,
    *,
    cluster: ClusterInfo,
    table: pd.DataFrame | None,
    tuned: tuning.TuningResult,
    baselines: dict[str, dict[str, float]],
    echo: Echo,
) -> TrainOutcome:
    echo("== final fit on the whole training part")
    started = time.perf_counter()
    pipeline = fit_final(prepared, tuned.best_params, options.seed)
    final_seconds = time.perf_counter() - started
    predicted = pipeline.predict(prepared.X_holdout)  # the held-out part, used exactly once
    holdout = protocol.regression_metrics(prepared.y_holdout.to_numpy(), predicted)
    baseline_report = {}
    for name, scores in baselines.items():
        baseline_report[name] = protocol.only_metrics(scores)
    metrics = {
        "protocol": protocol.PROTOCOL.format(
            test_size=options.test_size, seed=options.seed, folds=options.folds
        ),
        "cv": tuned.best_cv,
        "holdout": holdout,
    }
    version_dir = artifact.write_version(
        pipeline,
        options.out,
        dataset={"path": str(options.data), "sha256": data.sha256, "rows": data.rows},
        dataset_file=Path(options.data),
        metrics=metrics,
        params=tuned.best_params,
        tuning={
            "trials": len(tuned.trials),
            "failed_trials": len(tuned.errors),
            "wall_seconds": round(tuned.wall_seconds, 3),
            "nodes": len(tuned.nodes_used) or cluster.nodes,
            "node_ips": tuned.nodes_used,
            "cpus": cluster.cpus,
            "cpus_per_trial": options.cpus_per_trial,
            "max_concurrent_trials": options.max_concurrent,
            "search": "optuna-tpe" if tuned.search == "optuna" else "random",
            "seed": options.seed,
            "folds": options.folds,
        },
        baseline=baseline_report,
        extra={
            "holdout_split": {
                "test_size": options.test_size,
                "seed": options.seed,
                "rows": len(prepared.split.holdout),
                "full_names_sha256": protocol.names_digest(prepared.holdout_names),
                "file": "holdout.txt",
            },
            "final_fit_seconds": round(final_seconds, 3),
            "ignored_columns": data.ignored_columns,
        },
    )
    write_companions(version_dir, prepared, pipeline=pipeline, predicted=predicted, table=table, tuned=tuned,
                     seed=options.seed)
    manifest = artifact.read_manifest(version_dir)
    report.write_report(version_dir, manifest, table, tuned)
    size_mb = (version_dir / artifact.MODEL_FILE).stat().st_size / 1e6
    echo(f"model.joblib: {size_mb:.1f} MB (compressed)")
    echo(f"artifact: {version_dir}")
    echo("held-out: " + ", ".join(f"{k}={v:.4g}" for k, v in holdout.items()))
    return TrainOutcome(version_dir, metrics, baseline_report, tuned.best_params)


def write_companions(
    version_dir: Path,
    prepared: protocol.Prepared,
    *,
    pipeline: Pipeline,
    predicted: np.ndarray,
    table: pd.DataFrame | None,
    tuned: tuning.TuningResult,
    seed: int,
) -> None:
    """Tables, plots and the held-out list beside the model (not part of the signed pair)."""
    (version_dir / "holdout.txt").write_text(
        "\n".join(sorted(prepared.holdout_names)) + "\n", encoding="utf-8"
    )
    if table is not None:
        write_screening(table, version_dir)
    write_trials(tuned, version_dir)
    plots.predicted_vs_actual(
        prepared.y_holdout.to_numpy(), predicted, version_dir / "holdout_pred_vs_actual.png"
    )
    importance = holdout_importance(pipeline, prepared, seed)
    importance.to_csv(version_dir / "importance.csv", index=False)
    plots.importance_chart(importance, version_dir / "importance.png")
