"""Dataset writer/reader: exact schema, atomic replace, clear one-line errors on bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from data_collection import dataset as ds
from data_collection.dataset import DatasetError, meta_path, read_dataset, write_dataset
from data_collection.normalize import normalize_item
from data_collection.schema import DATASET_COLUMNS, SCHEMA_VERSION
from tests.data_collection.fake_github import population


def rows(n=5):
    out = []
    for repo in population(n):
        row = normalize_item(repo.item(), "2024-02-01T00:00:00Z")
        row["commits_count"] = repo.commits
        out.append(row)
    out[0]["description"] = 'multi\nline, "quoted" text'
    return out


def test_roundtrip_exact_columns_types_and_meta(tmp_path):
    path = tmp_path / "repos.csv"
    meta = write_dataset(rows(), path, {"query": "stars:>=10", "min_stars": 10, "slices": [],
                                        "api_calls": {"search": 1}})
    header = path.read_text().splitlines()[0]
    assert header == ",".join(DATASET_COLUMNS)
    assert "watchers" not in header
    on_disk = json.loads(meta_path(path).read_text())
    assert on_disk == meta and on_disk["schema_version"] == SCHEMA_VERSION and on_disk["rows"] == 5
    assert meta_path(path).name == "repos.csv.meta.json"
    frame = read_dataset(path)
    assert list(frame.columns) == list(DATASET_COLUMNS)
    assert frame["id"].dtype == "Int64" and frame["has_wiki"].dtype == "boolean"
    assert isinstance(frame["created_at"].dtype, pd.DatetimeTZDtype)
    assert frame["subscribers_count"].isna().all()  # empty, never a sentinel
    assert frame.loc[0, "description"] == 'multi\nline, "quoted" text'
    assert frame.loc[0, "topics"] == "a|b"
    assert "true" in path.read_text() and "True" not in path.read_text()


def test_duplicates_are_refused(tmp_path):
    r = rows(2)
    r[1]["full_name"] = r[0]["full_name"]
    with pytest.raises(DatasetError, match="duplicate"):
        write_dataset(r, tmp_path / "x.csv", {})
    assert not (tmp_path / "x.csv").exists()


def test_write_is_atomic_old_file_survives_a_failed_write(tmp_path, monkeypatch):
    path = tmp_path / "repos.csv"
    write_dataset(rows(3), path, {})
    before = path.read_bytes()
    new_rows = rows(5)

    def crash(src, dst):
        # The new content is complete in a temp file beside the target, but the rename never happens.
        assert Path(src).parent == path.parent and Path(src).read_bytes() == ds.render_csv(new_rows)
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_dataset(new_rows, path, {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repos.csv", "repos.csv.meta.json"]  # no temp left


def bad(tmp_path, text: str) -> Path:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t[: len(t) // 2], "truncated"),
    (lambda t: t.rsplit("\n", 2)[0] + "\n" + "x,1\n", "fields"),
    (lambda t: t.replace(",".join(DATASET_COLUMNS), ",".join(DATASET_COLUMNS[:-1])), "missing"),
    (lambda t: t.replace(",false,", ",nope,", 1), "not a valid bool"),
    (lambda t: t.replace("2024-02-01T00:00:00Z", "yesterday", 1), "not a valid datetime"),
    (lambda t: "", "empty file"),
    (lambda t: t + t.splitlines()[-1] + "\n", "duplicate"),
    (lambda t: t + '"an unterminated quote,1\n', "malformed CSV"),
])
def test_corrupt_files_give_one_clear_line(tmp_path, mutate, message):
    good = tmp_path / "good.csv"
    write_dataset(rows(), good, {})
    path = bad(tmp_path, mutate(good.read_text()))
    with pytest.raises(DatasetError, match=message) as err:
        read_dataset(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_sha256_mismatch_with_meta_is_detected(tmp_path):
    path = tmp_path / "repos.csv"
    write_dataset(rows(), path, {})
    path.write_text(path.read_text().replace("Python", "Pithon"))
    with pytest.raises(DatasetError, match="sha256"):
        read_dataset(path)
    assert len(read_dataset(path, verify_sha256=False)) == 5


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot read"):
        read_dataset(tmp_path / "nope.csv")


def test_render_handles_none_and_bools():
    assert ds._cell(None) == "" and ds._cell(True) == "true" and ds._cell(0) == "0"
