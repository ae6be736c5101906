"""Bad training data -> one clear error line each; the target's alias is dropped, never used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model_serving.development_server.data import TrainingDataError, load_training_data, minimum_rows
from synthetic.dataset import synthetic_dataset


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "repos.csv"
    frame.to_csv(path, index=False)
    return path


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(TrainingDataError) as info:
        load_training_data(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_good_dataset_loads(tmp_path: Path) -> None:
    data = load_training_data(_write(tmp_path, synthetic_dataset(50)), folds=5)
    assert data.rows == 50 and len(data.sha256) == 64 and list(data.frame.index) == list(range(50))


def test_missing_target_column(tmp_path: Path) -> None:
    path = _write(tmp_path, synthetic_dataset(50).drop(columns=["stargazers_count"]))
    assert "target column 'stargazers_count' missing" in _error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "repos.csv"
    path.write_text("")
    assert "empty file" in _error(path)


def test_header_only(tmp_path: Path) -> None:
    path = _write(tmp_path, synthetic_dataset(5).iloc[0:0])
    assert "no rows" in _error(path)


@pytest.mark.parametrize("extra_column", [False, True], ids=["contract-reader", "loose-reader"])
def test_non_numeric_garbage_in_numeric_column(tmp_path: Path, extra_column: bool) -> None:
    frame = synthetic_dataset(50).astype({"forks_count": object})
    frame.loc[7, "forks_count"] = "lots"
    if extra_column:
        frame["watchers_count"] = frame["stargazers_count"]
    message = _error(_write(tmp_path, frame))
    assert "forks_count" in message and "'lots'" in message and "line 9" in message


def test_garbage_in_target(tmp_path: Path) -> None:
    frame = synthetic_dataset(50).astype({"stargazers_count": object})
    frame.loc[3, "stargazers_count"] = "ERROR"
    frame["extra"] = 1
    assert "stargazers_count" in _error(_write(tmp_path, frame))


def test_fewer_rows_than_folds(tmp_path: Path) -> None:
    path = _write(tmp_path, synthetic_dataset(8))
    message = _error(path, folds=5)
    assert "too few for 5 folds" in message
    assert minimum_rows(5, 0.2) > 8


def test_duplicate_repositories(tmp_path: Path) -> None:
    frame = synthetic_dataset(50)
    frame = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)
    assert "duplicate" in _error(_write(tmp_path, frame))


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.csv")


def test_watchers_count_is_dropped(tmp_path: Path) -> None:
    frame = synthetic_dataset(50)
    frame["watchers_count"] = frame["stargazers_count"]
    data = load_training_data(_write(tmp_path, frame))
    assert "watchers_count" not in data.frame.columns
    assert data.ignored_columns == ["watchers_count"]
