"""The dataset contract (docs/contracts.md §1): the one place that names the columns, their order and their
types.

data_collection writes it, training reads it, features.py and the serving API validate against it.
Change a column here and nowhere else, and raise SCHEMA_VERSION.
"""

from __future__ import annotations

from typing import Final, Literal

SCHEMA_VERSION: Final = 1

DType = Literal["int", "float", "bool", "str", "datetime"]

#: Column name -> type, in the exact order of the CSV header.
DATASET_DTYPES: Final[dict[str, DType]] = {
    "full_name": "str",
    "id": "int",
    "owner_login": "str",
    "owner_type": "str",
    "stargazers_count": "int",
    "forks_count": "int",
    "open_issues_count": "int",
    "size": "int",
    "language": "str",
    "license_spdx": "str",
    "topics": "str",
    "description": "str",
    "homepage": "str",
    "has_wiki": "bool",
    "has_pages": "bool",
    "has_issues": "bool",
    "has_projects": "bool",
    "has_discussions": "bool",
    "archived": "bool",
    "fork": "bool",
    "is_template": "bool",
    "default_branch": "str",
    "created_at": "datetime",
    "updated_at": "datetime",
    "pushed_at": "datetime",
    "subscribers_count": "int",
    "contributors_count": "int",
    "commits_count": "int",
    "releases_count": "int",
    "owner_followers": "int",
    "collected_at": "datetime",
}

DATASET_COLUMNS: Final[tuple[str, ...]] = tuple(DATASET_DTYPES)

KEY_COLUMN: Final = "full_name"
TARGET_COLUMN: Final = "stargazers_count"

#: GitHub's aliases of the target: never kept in a dataset, never used as a feature.
TARGET_ALIASES: Final[frozenset[str]] = frozenset({"watchers_count", "watchers", "stargazers"})

#: Filled by enrichment calls; empty (never a sentinel) when unknown.
ENRICHMENT_COLUMNS: Final[tuple[str, ...]] = (
    "subscribers_count",
    "contributors_count",
    "commits_count",
    "releases_count",
    "owner_followers",
)

BOOL_COLUMNS: Final[tuple[str, ...]] = tuple(c for c, t in DATASET_DTYPES.items() if t == "bool")
DATETIME_COLUMNS: Final[tuple[str, ...]] = tuple(c for c, t in DATASET_DTYPES.items() if t == "datetime")
INT_COLUMNS: Final[tuple[str, ...]] = tuple(c for c, t in DATASET_DTYPES.items() if t == "int")

#: Separator of the `topics` column.
TOPICS_SEPARATOR: Final = "|"
