"""The development server's command line: bad data and an unwritable ``--out`` are one ``Error:`` line and
exit 1 before any work (before Ray starts); ``screen`` works on its own, on a real local Ray."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from data_collection.schema import TARGET_COLUMN
from model_serving.development_server import screening
from model_serving.development_server.cli import main
from synthetic.dataset import synthetic_dataset
from tests.support import own_lines


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "repos.csv"
    frame.to_csv(path, index=False)
    return path


def _bad_frames() -> dict[str, tuple[pd.DataFrame, str]]:
    good = synthetic_dataset(60, seed=4)
    garbage = good.astype({"open_issues_count": object})
    garbage.loc[11, "open_issues_count"] = "n/a!"
    return {
        "missing-target": (good.drop(columns=[TARGET_COLUMN]), "target column 'stargazers_count' missing"),
        "garbage-number": (garbage, "open_issues_count"),
        "fewer-rows-than-folds": (good.head(7), "too few for 5 folds"),
        "duplicates": (pd.concat([good, good.iloc[[3]]], ignore_index=True), "duplicate"),
        "header-only": (good.iloc[0:0], "no rows"),
    }


@pytest.mark.parametrize("case", list(_bad_frames()))
def test_bad_data_is_one_error_line_and_exit_1_before_any_work(tmp_path: Path, case: str) -> None:
    frame, fragment = _bad_frames()[case]
    path = tmp_path / f"{case}.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "models"
    result = CliRunner().invoke(main, ["train", "--data", str(path), "--trials", "1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: ") and fragment in lines[0], lines
    assert not out.exists()  # refused before any work


def test_an_empty_file_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = CliRunner().invoke(main, ["train", "--data", str(path), "--trials", "1", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {path}: empty file (no header, no rows)"]


@pytest.mark.parametrize("command", ["train", "screen", "tune"])
@pytest.mark.parametrize("where", ["a-file", "a-file/models"])
def test_an_unwritable_out_is_refused_before_any_work(tmp_path: Path, command: str, where: str) -> None:
    """``--out`` under a regular file is one line naming the blocker, not a traceback after the whole run."""
    data_path = _csv(tmp_path, synthetic_dataset(60, seed=5))
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / where
    args = [command, "--data", str(data_path), "--out", str(out)]
    args += ["--trials", "1"] if command != "screen" else []
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    blocker = tmp_path / "a-file"
    assert lines == [f"Error: {out}: cannot write results there ({blocker} is not a directory)"], lines


@pytest.mark.integration
def test_screen_works_on_its_own(ray_local, tmp_path: Path) -> None:
    data_path = _csv(tmp_path, synthetic_dataset(100, seed=9))
    out = tmp_path / "screening"
    result = CliRunner().invoke(main, ["screen", "--data", str(data_path), "--folds", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "screening.csv")
    assert len(table) >= 6 and set(table["model"]) == set(screening.candidates(0))
    assert table["node_ip"].notna().all()  # each ran as a Ray task
    assert (out / "screening.md").read_text().startswith("| model |")
    assert (out / "screening.png").read_bytes()[:4] == b"\x89PNG"
    assert own_lines(result.output)[-1] == f"screening table: {out / 'screening.csv'}"
