"""``report.md`` for a model version: what was done, the numbers, and how to read them, in one page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from model_serving.artifact import Manifest
from model_serving.development_server import screening
from model_serving.development_server.tuning import TuningResult


def _row(name: str, m: dict[str, float]) -> str:
    return (
        f"| {name} | {m['r2_log']:.3f} | {m['r2']:.3f} | {m['mae']:,.0f} | {m['rmse']:,.0f} | "
        f"{m['spearman']:.3f} |"
    )


_HIGHER_IS_BETTER = {"r2_log": True, "r2": True, "mae": False, "rmse": False, "spearman": True}


def _versus_baselines(cv: dict[str, float], baselines: dict[str, dict[str, float]]) -> list[str]:
    """Like with like (CV against CV, same folds): where the tuned model wins and where it loses, plainly.

    The tuned model fits log1p(stars), so it can lose to a forest on raw stars on the raw-scale metrics
    (R², MAE, RMSE); the report must say so rather than leave the reader to compare rows.
    """
    lines = []
    for name, base in baselines.items():
        wins = [k for k, up in _HIGHER_IS_BETTER.items() if (cv[k] > base[k]) == up and cv[k] != base[k]]
        losses = [k for k in _HIGHER_IS_BETTER if k not in wins and cv[k] != base[k]]
        verdict = f"better on {', '.join(wins) or 'nothing'}"
        if losses:
            verdict += f"; WORSE on {', '.join(losses)}"
        lines.append(f"- against baseline {name} (CV vs CV, same folds): {verdict}.")
    return [*lines, ""] if lines else []


def write_report(
    version_dir: Path, manifest: Manifest, table: pd.DataFrame | None, tuned: TuningResult
) -> Path:
    metrics = manifest.metrics
    lines = [
        f"# Model {manifest.version}",
        "",
        f"Dataset `{manifest.dataset.path}`: {manifest.dataset.rows} rows "
        f"(sha256 `{manifest.dataset.sha256[:12]}…`).",
        f"Code `{manifest.code_version[:12]}`, feature version {manifest.feature_version}, "
        f"scikit-learn {manifest.sklearn}.",
        "",
        f"**Protocol.** {metrics.protocol}. The CV row of the tuned model is the best of "
        f"{manifest.tuning.trials} trials, so it is optimistic; the held-out row is the honest estimate.",
        "",
        "| model | R² log | R² | MAE | RMSE | Spearman |",
        "|---|---:|---:|---:|---:|---:|",
        _row("tuned RF (held-out, once)", metrics.holdout.model_dump()),
        _row("tuned RF (CV, best trial)", metrics.cv.model_dump()),
        *(_row(f"baseline {name} (CV)", m.model_dump()) for name, m in manifest.baseline.items()),
        "",
        *_versus_baselines(
            metrics.cv.model_dump(), {name: m.model_dump() for name, m in manifest.baseline.items()}
        ),
        f"**Tuning.** {manifest.tuning.search}, {manifest.tuning.trials} trials "
        f"({len(tuned.errors)} failed), {manifest.tuning.wall_seconds:.1f} s "
        f"on {manifest.tuning.nodes} node(s) / "
        f"{manifest.tuning.cpus:g} CPUs. Best parameters: `{json.dumps(manifest.params)}`.",
        "",
        "R² on raw stars is dominated by the few most-starred repositories; R² on log1p(stars) and Spearman "
        "say how well the model orders repositories, which is what a comparison of repositories needs.",
        "",
    ]
    if table is not None:
        lines += [
            "## Screening (training part, same folds)",
            "",
            screening.markdown_table(table),
            "![screening](screening.png)",
            "",
        ]
    lines += [
        "## Figures",
        "",
        "![tuning trials](tuning.png)",
        "![held-out predicted vs actual](holdout_pred_vs_actual.png)",
        "![permutation importance](importance.png)",
        "",
    ]
    path = version_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
