"""GitHub repository JSON (search items or /repos answers) -> one dataset row per docs/contracts.md §1.

Rows are plain dicts of Python values (int, bool, str, None) keyed by `schema.DATASET_COLUMNS`; the dataset
writer turns them into CSV text. `watchers_count`/`watchers` are GitHub's aliases of the target and are simply
never read here.

Also turns the genuine search pages in ../shared/data (raw_api_pages) into rows, for training on real data.
Their `collected_at` must come from the pages themselves (the newest pushed_at/updated_at), not from today:
ages computed against today would be inflated by years.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data_collection.schema import DATASET_COLUMNS, ENRICHMENT_COLUMNS, TOPICS_SEPARATOR

Row = dict[str, Any]


def iso_utc(value: str | datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, whole seconds: the one spelling of times in the dataset."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def normalize_item(item: Mapping[str, Any], collected_at: str | datetime) -> Row:
    """One repository JSON object -> one row; enrichment columns start empty (None)."""
    owner = item.get("owner") or {}
    license_ = item.get("license") or {}
    topics = item.get("topics") or []
    row: Row = {
        "full_name": item["full_name"],
        "id": int(item["id"]),
        "owner_login": owner.get("login") or item["full_name"].split("/", 1)[0],
        "owner_type": _str(owner.get("type")),
        "stargazers_count": int(item["stargazers_count"]),
        "forks_count": _int(item.get("forks_count")),
        "open_issues_count": _int(item.get("open_issues_count")),
        "size": _int(item.get("size")),
        "language": _str(item.get("language")),
        "license_spdx": _str(license_.get("spdx_id")),
        "topics": TOPICS_SEPARATOR.join(str(t) for t in topics) or None,
        "description": _str(item.get("description")),
        "homepage": _str(item.get("homepage")),
        "has_wiki": _bool(item.get("has_wiki")),
        "has_pages": _bool(item.get("has_pages")),
        "has_issues": _bool(item.get("has_issues")),
        "has_projects": _bool(item.get("has_projects")),
        "has_discussions": _bool(item.get("has_discussions")),
        "archived": _bool(item.get("archived")),
        "fork": _bool(item.get("fork")),
        "is_template": _bool(item.get("is_template")),
        "default_branch": _str(item.get("default_branch")),
        "created_at": iso_utc(item.get("created_at")),
        "updated_at": iso_utc(item.get("updated_at")),
        "pushed_at": iso_utc(item.get("pushed_at")),
        **dict.fromkeys(ENRICHMENT_COLUMNS),
        "collected_at": iso_utc(collected_at),
    }
    assert tuple(row) == DATASET_COLUMNS  # the contract's order, checked where rows are born
    return row


def newest_activity(items: Iterable[Mapping[str, Any]]) -> str | None:
    """The newest pushed_at/updated_at among items: the best estimate of when saved pages were fetched."""
    newest: str | None = None
    for item in items:
        for key in ("pushed_at", "updated_at"):
            stamp = iso_utc(item.get(key))
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
    return newest


def load_search_items(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """All `items` of saved search API pages, in file order (duplicates kept: pages overlap)."""
    items: list[dict[str, Any]] = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            page = json.load(fh)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise ValueError(f"{path}: not a GitHub search page (no 'items' list)")
        items.extend(page["items"])
    return items


def rows_from_search_pages(paths: Iterable[str | Path],
                           collected_at: str | datetime | None = None) -> list[Row]:
    """Rows from saved search pages, one per repository (by full_name), most stars first, ties by id.

    When the same repository appears on several pages, the copy with the newest `updated_at` wins.
    `collected_at` defaults to the newest activity found in the pages (see the module docstring).
    """
    items = load_search_items(sorted(str(p) for p in paths))
    if not items:
        raise ValueError("no repositories in the given search pages")
    stamp = collected_at if collected_at is not None else newest_activity(items)
    if stamp is None:
        raise ValueError("collected_at not given and the pages carry no pushed_at/updated_at")
    latest: dict[str, Mapping[str, Any]] = {}
    for item in items:
        name = item["full_name"]
        if name not in latest or (item.get("updated_at") or "") > (latest[name].get("updated_at") or ""):
            latest[name] = item
    rows = [normalize_item(item, stamp) for item in latest.values()]
    rows.sort(key=lambda r: (-r["stargazers_count"], r["id"]))
    return rows
