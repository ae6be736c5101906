"""A small but real model version for tests of serving and deploy (built through the production code path).

It uses features.build_pipeline and artifact.write_version exactly as training does, on synthetic rows whose
stars depend on forks, commits and age, so predictions are meaningful enough to rank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from data_collection.schema import DATASET_COLUMNS
from model_serving import artifact, features

LANGUAGES = ["Python", "JavaScript", "Go", "Rust", "C++", None]
LICENSES = ["mit", "apache-2.0", "gpl-3.0", None]


def synthetic_dataset(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Rows with every dataset column (docs/contracts.md §1), stars correlated with
    forks/commits/contributors."""
    rng = np.random.default_rng(seed)
    collected = pd.Timestamp("2026-11-01T00:00:00Z")
    age_days = rng.integers(30, 5000, rows)
    created = collected - pd.to_timedelta(age_days, unit="D")
    pushed = created + pd.to_timedelta((age_days * rng.random(rows)).astype(int), unit="D")
    forks = rng.lognormal(3, 1.2, rows).astype(int)
    commits = rng.lognormal(5, 1.0, rows).astype(int) + 1
    contributors = rng.lognormal(2, 1.0, rows).astype(int) + 1
    stars = (50 + 6 * forks + 0.5 * commits + 20 * contributors + rng.lognormal(3, 1, rows)).astype(int)
    frame = pd.DataFrame(
        {
            "full_name": [f"owner{i % 97}/repo{i}" for i in range(rows)],
            "id": np.arange(1, rows + 1),
            "owner_login": [f"owner{i % 97}" for i in range(rows)],
            "owner_type": rng.choice(["User", "Organization"], rows),
            "stargazers_count": stars,
            "forks_count": forks,
            "open_issues_count": rng.integers(0, 200, rows),
            "size": rng.integers(10, 100_000, rows),
            "language": rng.choice(np.array(LANGUAGES, dtype=object), rows),
            "license_spdx": rng.choice(np.array(LICENSES, dtype=object), rows),
            "topics": ["|".join(f"t{j}" for j in range(k)) for k in rng.integers(0, 6, rows)],
            "description": ["a repository" * int(k) for k in rng.integers(0, 5, rows)],
            "homepage": rng.choice(["", "https://example.org"], rows),
            "has_wiki": rng.choice(["true", "false"], rows),
            "has_pages": rng.choice(["true", "false"], rows),
            "has_issues": "true",
            "has_projects": rng.choice(["true", "false"], rows),
            "has_discussions": rng.choice(["true", "false"], rows),
            "archived": "false",
            "fork": "false",
            "is_template": "false",
            "default_branch": "main",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": pushed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pushed_at": pushed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subscribers_count": (forks / 3).astype(int),
            "contributors_count": contributors,
            "commits_count": commits,
            "releases_count": rng.integers(0, 40, rows),
            "owner_followers": rng.integers(0, 5000, rows),
            "collected_at": collected.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    return frame.loc[:, list(DATASET_COLUMNS)]


def _fake_metrics(value: float) -> dict[str, float]:
    return {"r2_log": value, "r2": value, "mae": 1.0, "rmse": 1.0, "spearman": value}


def build_tiny_version(models_dir: Path, *, rows: int = 300, n_estimators: int = 10, seed: int = 0) -> Path:
    """Fit a small forest on synthetic rows and write it as a model version (unsigned, as training does).

    The metrics recorded are placeholders and say so in ``protocol``: this artifact exists to exercise
    deploy and serving, not to report accuracy.
    """
    data = synthetic_dataset(rows, seed)
    pipeline = features.build_pipeline(
        RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1)
    )
    pipeline.fit(features.select_input(data), features.target_of(data))
    return artifact.write_version(
        pipeline,
        models_dir,
        dataset={"path": "synthetic", "sha256": "0" * 64, "rows": rows},
        metrics={"protocol": "test fixture: metrics are placeholders", "cv": _fake_metrics(0.5),
                 "holdout": _fake_metrics(0.5)},
        params={"n_estimators": n_estimators},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={"median": _fake_metrics(0.0), "default_rf_raw": _fake_metrics(0.3)},
    )
