"""Synthetic dataset rows: every dataset column (docs/contracts.md §1), stars that depend on forks, commits
and contributors, so that a model fitted on them ranks meaningfully."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_collection.schema import DATASET_COLUMNS

LANGUAGES = ["Python", "JavaScript", "Go", "Rust", "C++", None]
LICENSES = ["mit", "apache-2.0", "gpl-3.0", None]


def synthetic_dataset(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Rows with every dataset column, stars correlated with forks/commits/contributors.

    The same seed gives the same rows: tests and benchmarks rely on that."""
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
