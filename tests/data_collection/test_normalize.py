"""API JSON -> dataset rows, including the genuine 2023 search pages in ../shared/data."""

from __future__ import annotations

import pytest

from data_collection.normalize import iso_utc, normalize_item, rows_from_search_pages
from data_collection.schema import DATASET_COLUMNS, ENRICHMENT_COLUMNS
from tests.data_collection.fake_github import population
from tests.support import RAW_API_PAGES, require_shared_data


def test_item_to_row_drops_target_aliases_and_keeps_order():
    item = population(1)[0].item()
    row = normalize_item(item, "2024-01-01T10:00:00+02:00")
    assert tuple(row) == DATASET_COLUMNS
    assert "watchers_count" not in row and "watchers" not in row
    assert row["collected_at"] == "2024-01-01T08:00:00Z"
    assert row["license_spdx"] == "MIT" and row["topics"] == "a|b" and row["owner_type"] == "User"
    assert all(row[c] is None for c in ENRICHMENT_COLUMNS)  # even though the item had subscribers_count


def test_missing_optionals_are_none_not_sentinels():
    item = {"id": 1, "full_name": "a/b", "stargazers_count": 5, "license": None, "topics": [],
            "language": None, "description": "", "created_at": "2020-01-01T00:00:00Z"}
    row = normalize_item(item, "2024-01-01T00:00:00Z")
    assert row["owner_login"] == "a"
    assert row["license_spdx"] is row["topics"] is row["language"] is row["description"] is None


def test_iso_utc_spellings():
    assert iso_utc("2020-05-01T01:02:03Z") == "2020-05-01T01:02:03Z"
    assert iso_utc(None) is None and iso_utc("") is None


@pytest.mark.shared_data
def test_genuine_search_pages_become_unique_rows():
    pages = sorted(require_shared_data(RAW_API_PAGES).glob("*.json"))
    rows = rows_from_search_pages(pages)
    names = [r["full_name"] for r in rows]
    assert len(names) == len(set(names)) == 1000  # 2,000 items, 1,000 repositories
    # collected_at: the newest activity in the pages (2023-05-22), never today
    assert rows[0]["collected_at"].startswith("2023-05-2")
    assert all(r["stargazers_count"] >= 15_000 for r in rows)
    assert rows == sorted(rows, key=lambda r: (-r["stargazers_count"], r["id"]))


def test_bad_pages_are_refused(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"message": "rate limited"}')
    with pytest.raises(ValueError, match="not a GitHub search page"):
        rows_from_search_pages([p])
