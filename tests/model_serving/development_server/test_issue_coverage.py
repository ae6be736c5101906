"""Issue #3 bullets that the other files did not prove end to end (found in review), on a real local Ray.

- every bad-data case of the issue through the CLI: one ``Error:`` line, exit 1, before Ray starts;
- screening, tuning and the baselines work WITHOUT the held-out part (they are never handed it);
- the numbers in model.json and report.md are recomputable from the held-out rows (holdout) and from the
  training part's folds (cv: the best trial of trials.csv; baselines: CV on the same folds), and nothing else;
- none of the target's aliases (watchers_count, watchers, stargazers) reaches a feature, even when the
  training CSV carries them;
- the PNGs are real images; ``screen`` works alone.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg

from data_collection.schema import TARGET_ALIASES, TARGET_COLUMN
from model_serving import artifact, features
from model_serving.development_server import protocol, screening, train, tuning
from model_serving.development_server.cli import main
from model_serving.development_server.data import load_training_data
from synthetic.dataset import synthetic_dataset
from tests.support import own_lines

pytestmark = pytest.mark.integration

ALIASES = sorted(TARGET_ALIASES)
DESIGN_KEYS = {"version", "created_at", "sha256", "code_version", "feature_version", "python", "sklearn",
               "input_columns", "target", "dataset", "metrics", "params", "tuning", "baseline", "signature"}


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
def test_cli_bad_data_is_one_error_line_and_exit_1(tmp_path: Path, case: str) -> None:
    frame, fragment = _bad_frames()[case]
    path = tmp_path / f"{case}.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "models"
    result = CliRunner().invoke(main, ["train", "--data", str(path), "--trials", "1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: ") and fragment in lines[0], lines
    assert not out.exists()  # refused before any work


class _Forbidden:
    """Stands in for the held-out part: any use (attribute, len, iteration, indexing, concat) fails."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the held-out part was touched ({name})")

    def __len__(self) -> int:
        raise AssertionError("the held-out part was touched (len)")

    def __iter__(self):
        raise AssertionError("the held-out part was touched (iter)")

    def __getitem__(self, key: object) -> object:
        raise AssertionError("the held-out part was touched (getitem)")


@pytest.mark.parametrize("command", ["train", "screen", "tune"])
@pytest.mark.parametrize("where", ["a-file", "a-file/models"])
def test_cli_unwritable_out_is_refused_before_any_work(tmp_path: Path, command: str, where: str) -> None:
    """Before the fix, --out under a regular file failed with a traceback AFTER the whole training run."""
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


def test_screening_tuning_and_baselines_never_need_the_holdout(ray_local, tmp_path: Path) -> None:
    """If any of them touched the held-out part, the stand-ins below would break it (pd.concat refuses them;
    None would be silently dropped by pd.concat, hence not None)."""
    data = load_training_data(_csv(tmp_path, synthetic_dataset(120, seed=6)), folds=3)
    prepared = protocol.prepare(data.frame, test_size=0.2, folds=3, seed=2)
    blind = dataclasses.replace(prepared, X_holdout=_Forbidden(), y_holdout=_Forbidden(),
                                holdout_names=_Forbidden())
    table = screening.run_screening(blind, seed=2, show_progress=False)
    assert len(table) >= 6
    baselines = train.run_baselines(blind, seed=2)
    assert set(baselines) == {"median", "default_rf_raw"}
    space = {**tuning.search_space(), "n_estimators": 10}
    tuned = tuning.run_tuning(blind, trials=1, seed=2, search="random", space=space, verbose=0)
    assert set(tuned.trials["rows_digest"]) == {protocol.rows_digest(prepared.split.train)}


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "repos.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_artifact_numbers_come_from_holdout_and_cv_only(ray_local, tmp_path: Path) -> None:
    frame = synthetic_dataset(150, seed=8)
    for alias in ALIASES:  # the target under GitHub's other names: must never become a feature
        frame[alias] = frame[TARGET_COLUMN]
    data_path = _csv(tmp_path, frame)
    out = tmp_path / "models"
    seed, folds = 3, 3
    result = CliRunner().invoke(main, ["train", "--data", str(data_path), "--trials", "2", "--out", str(out),
                                       "--folds", str(folds), "--seed", str(seed), "--max-concurrent", "1"])
    assert result.exit_code == 0, result.output
    version_dir = artifact.newest_version(out)
    lines = own_lines(result.output)
    assert lines[-2] == f"artifact: {version_dir}" and lines[-1].startswith("held-out: r2_log="), lines[-5:]

    raw = json.loads((version_dir / "model.json").read_text())
    assert set(raw) >= DESIGN_KEYS and raw["signature"] is None
    assert raw["target"] == TARGET_COLUMN
    assert {c["name"] for c in raw["input_columns"]}.isdisjoint({TARGET_COLUMN, *ALIASES})
    assert sorted(raw["ignored_columns"]) == ALIASES
    manifest = artifact.read_manifest(version_dir)
    pipeline, _ = artifact.load_version(version_dir, None, require_signature=False)
    names = list(pipeline[:-1].get_feature_names_out())
    assert not any(a in n for n in names for a in (TARGET_COLUMN, *ALIASES)), names

    # held-out: the seeded split's rows, scored by the saved model, give exactly the recorded numbers
    loaded = load_training_data(data_path, folds=folds)
    prepared = protocol.prepare(loaded.frame, test_size=0.2, folds=folds, seed=seed)
    holdout_names = (version_dir / "holdout.txt").read_text().split()
    assert holdout_names == sorted(prepared.holdout_names)
    assert set(holdout_names).isdisjoint(loaded.frame.iloc[prepared.split.train]["full_name"])
    predicted = pipeline.predict(prepared.X_holdout)
    recomputed = protocol.regression_metrics(prepared.y_holdout.to_numpy(), predicted)
    for name in protocol.METRIC_NAMES:
        assert getattr(manifest.metrics.holdout, name) == pytest.approx(recomputed[name], rel=1e-9, abs=1e-12)

    # cv: the best successful trial of trials.csv, whose rows were the training part only
    trials = pd.read_csv(version_dir / "trials.csv")
    ok = trials[trials["status"] == "ok"]
    assert set(ok["rows_digest"]) == {protocol.rows_digest(prepared.split.train)}
    best = ok.sort_values("r2_log", ascending=False).iloc[0]
    for name in protocol.METRIC_NAMES:
        assert getattr(manifest.metrics.cv, name) == pytest.approx(best[name], rel=1e-9)

    # baselines: CV on the same folds of the training part (the median one recomputed here)
    median = protocol.cross_validate(
        train.median_baseline(), prepared.X_train, prepared.y_train, prepared.folds
    )
    for name in protocol.METRIC_NAMES:
        assert getattr(manifest.baseline["median"], name) == pytest.approx(median[name], rel=1e-9, abs=1e-12)

    # the report shows those numbers (and says where the model loses to the raw-stars forest, if it does)
    report = (version_dir / "report.md").read_text()
    assert f"| tuned RF (held-out, once) | {manifest.metrics.holdout.r2_log:.3f} |" in report
    assert f"| tuned RF (CV, best trial) | {manifest.metrics.cv.r2_log:.3f} |" in report
    assert "against baseline default_rf_raw (CV vs CV, same folds): better on" in report
    rf_raw = manifest.baseline["default_rf_raw"]
    cv = manifest.metrics.cv
    loses = (cv.r2_log < rf_raw.r2_log or cv.r2 < rf_raw.r2 or cv.mae > rf_raw.mae or cv.rmse > rf_raw.rmse
             or cv.spearman < rf_raw.spearman)
    verdict = report.split("against baseline default_rf_raw")[1].splitlines()[0]
    assert ("WORSE on" in verdict) == loses, verdict

    # the aliases are inert: scrambling them (and the target) changes no prediction of the saved model
    scrambled = frame.copy()
    for alias in [TARGET_COLUMN, *ALIASES]:
        scrambled[alias] = np.random.default_rng(0).permutation(frame[alias].to_numpy()) * 97
    a, _, _ = features.predict_with_interval(pipeline, frame.head(20))
    b, _, _ = features.predict_with_interval(pipeline, scrambled.head(20))
    np.testing.assert_array_equal(a, b)

    for png in ("screening.png", "tuning.png", "holdout_pred_vs_actual.png", "importance.png"):
        path = version_dir / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        height, width = mpimg.imread(path).shape[:2]
        assert height >= 300 and width >= 400, (png, height, width)
    assert f"]({'importance.png'})" in report


def test_screen_command_alone(ray_local, tmp_path: Path) -> None:
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
