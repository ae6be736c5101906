"""Screening: several model families on the same shuffled folds, each candidate one Ray task in parallel.

Why screen before tuning: it shows, on the training part only, how much each family gains over a constant
(the median) and whether the Random Forest we tune is a sensible choice at all. Every candidate is the SAME
Pipeline (features -> encoding -> regressor on log1p stars) with another regressor: only the family differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pandas as pd
import ray
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from tqdm import tqdm

from model_serving import features
from model_serving.development_server import protocol

COLUMNS: Final = ("model", "r2_log", "r2", "mae", "rmse", "spearman", "r2_log_std", "fit_seconds", "node_ip")


def candidates(seed: int) -> dict[str, Callable[[], BaseEstimator]]:
    """Name -> regressor factory. Forests use n_jobs=1: one Ray task = one CPU."""
    return {
        "median": lambda: DummyRegressor(strategy="median"),
        "ridge": lambda: Ridge(alpha=1.0),
        "knn": lambda: KNeighborsRegressor(n_neighbors=15, weights="distance"),
        "random_forest": lambda: RandomForestRegressor(
            n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
        ),
        "extra_trees": lambda: ExtraTreesRegressor(
            n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1
        ),
        "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(random_state=seed),
    }


@ray.remote(num_cpus=1)
def _evaluate(
    name: str, seed: int, X: pd.DataFrame, y: pd.Series, folds: protocol.Folds
) -> dict[str, object]:
    pipeline = features.build_pipeline(candidates(seed)[name]())
    scores = protocol.cross_validate(pipeline, X, y, folds)
    return {"model": name, **scores, "node_ip": ray.util.get_node_ip_address()}


def run_screening(prepared: protocol.Prepared, *, seed: int, show_progress: bool = True) -> pd.DataFrame:
    """One Ray task per candidate on the shared folds; a table sorted by R² on the log scale."""
    X_ref = ray.put(prepared.X_train)  # in the object store once, shared by every task
    y_ref = ray.put(prepared.y_train)
    folds_ref = ray.put(prepared.folds)
    pending = {_evaluate.remote(name, seed, X_ref, y_ref, folds_ref): name for name in candidates(seed)}
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    with tqdm(total=len(pending), desc="screening", unit="model", disable=not show_progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                rows.append(ray.get(done[0]))
            except ray.exceptions.RayTaskError as exc:  # one broken family must not hide the others
                tqdm.write(f"screening: {name} failed: {str(exc).splitlines()[-1]}")
            bar.update(1)
    if not rows:
        raise RuntimeError("screening: every candidate failed")
    table = pd.DataFrame(rows).loc[:, list(COLUMNS)].sort_values("r2_log", ascending=False)
    table.attrs["wall_seconds"] = time.perf_counter() - started
    return table.reset_index(drop=True)


def write_table(table: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    """screening.csv and screening.md (the markdown rounds for people; the CSV keeps every digit)."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "screening.csv"
    md_path = directory / "screening.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(markdown_table(table), encoding="utf-8")
    return csv_path, md_path


def markdown_table(table: pd.DataFrame) -> str:
    header = (
        "| model | R² log | R² | MAE | RMSE | Spearman | fit s/fold |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r.model} | {r.r2_log:.3f} ± {r.r2_log_std:.3f} | {r.r2:.3f} | {r.mae:,.0f} | {r.rmse:,.0f} | "
        f"{r.spearman:.3f} | {r.fit_seconds:.2f} |"
        for r in table.itertuples()
    ]
    return header + "\n".join(lines) + "\n"
