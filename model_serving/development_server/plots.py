"""PNG figures for a model version: screening, tuning trials, held-out predictions, permutation importance.

Matplotlib's Agg backend (no display). Every function takes data, writes one PNG and returns its path, so the
figures can be regenerated from a version's tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def screening_chart(table: pd.DataFrame, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    order = table.sort_values("r2_log")
    left.barh(order["model"], order["r2_log"], xerr=order["r2_log_std"], color="#4c72b0", label="R² (log)")
    left.scatter(order["spearman"], order["model"], color="#dd8452", zorder=3, label="Spearman")
    left.axvline(0, color="black", linewidth=0.8)
    left.set_xlabel("cross-validated score (training part only)")
    left.legend(loc="lower right")
    left.set_title("Screening: same folds for every family")
    right.barh(order["model"], order["fit_seconds"], color="#55a868")
    right.set_xlabel("fit time per fold (s)")
    right.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tuning_chart(trials: pd.DataFrame, path: Path, metric: str = "r2_log") -> Path:
    ok = trials[trials["status"] == "ok"].sort_values("number")
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.scatter(ok["number"], ok[metric], s=18, color="#4c72b0", label="trial (CV mean)")
    if not ok.empty:
        ax.plot(ok["number"], ok[metric].cummax(), color="#c44e52", label="best so far")
    failed = trials[trials["status"] != "ok"]
    if not failed.empty:
        floor = ok[metric].min() if not ok.empty else 0.0
        ax.scatter(failed["number"], [floor] * len(failed), marker="x", color="black", label="failed trial")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"CV {metric}")
    ax.set_title(f"Random Forest tuning: {len(trials)} trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    actual = np.asarray(actual, dtype=float) + 1
    predicted = np.clip(np.asarray(predicted, dtype=float), 0, None) + 1
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(actual, predicted, s=8, alpha=0.5, color="#4c72b0")
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="perfect")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("actual stars + 1")
    ax.set_ylabel("predicted stars + 1")
    ax.set_title(f"Held-out set ({len(actual)} repositories)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def importance_chart(importance: pd.DataFrame, path: Path) -> Path:
    order = importance.sort_values("mean")
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(order))))
    ax.barh(order["column"], order["mean"], xerr=order["std"], color="#8172b3")
    ax.set_xlabel("drop in held-out R² (log) when the column is permuted")
    ax.set_title("Permutation importance of raw input columns")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
