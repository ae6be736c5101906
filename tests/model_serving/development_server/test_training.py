"""Screening, tuning and the whole train run on a real local Ray (num_cpus=2), with tiny data and trials.

What the artifact reports is recomputable from the held-out rows (holdout) and the training part's folds (cv:
the best trial of trials.csv; baselines: CV on the same folds), and nothing else: screening, tuning and the
baselines never see the held-out part, and no name of the target reaches a feature.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg
from ray import tune

from data_collection.schema import TARGET_ALIASES, TARGET_COLUMN
from model_serving import artifact, features
from model_serving.development_server import protocol, screening, train, tuning
from model_serving.development_server.cli import main
from model_serving.development_server.data import load_training_data
from synthetic.dataset import synthetic_dataset
from tests.support import REPO_ROOT, own_lines

pytestmark = pytest.mark.integration


@pytest.fixture
def prepared(dataset_csv: Path) -> protocol.Prepared:
    data = load_training_data(dataset_csv, folds=3)
    return protocol.prepare(data.frame, test_size=0.2, folds=3, seed=0)


def test_screening_runs_every_family_as_ray_tasks(ray_local, prepared) -> None:
    table = screening.run_screening(prepared, seed=0, show_progress=False)
    assert set(table["model"]) == set(screening.candidates(0))
    assert len(table) >= 6
    by_name = table.set_index("model")
    assert by_name.loc["random_forest", "r2_log"] > by_name.loc["median", "r2_log"] + 0.3
    assert (table["fit_seconds"] > 0).all() and table["node_ip"].notna().all()


def test_tuning_sees_only_training_rows_and_survives_a_failed_trial(ray_local, prepared) -> None:
    """One Tuner run, two trials: a valid one, and one sklearn refuses (max_features=-3.0)."""
    space = {
        **{k: v for k, v in tuning.search_space().items() if k != "max_features"},
        "n_estimators": 10,
        "max_features": tune.grid_search([0.5, -3.0]),
    }
    result = tuning.run_tuning(prepared, trials=1, seed=0, search="random", space=space, verbose=0)
    assert list(result.trials["status"]).count("error") == 1
    assert len(result.errors) == 1 and "max_features" in result.errors[0]
    assert result.best_params["max_features"] == 0.5

    ok = result.trials[result.trials["status"] == "ok"]
    train_digest = protocol.rows_digest(prepared.split.train)
    everything = protocol.rows_digest(np.concatenate([prepared.split.train, prepared.split.holdout]))
    assert set(ok["rows_digest"]) == {train_digest} != {everything}
    assert set(ok["rows_seen"]) == {len(prepared.split.train)}
    assert set(prepared.X_train.index).isdisjoint(prepared.split.holdout)


@pytest.fixture(scope="module")
def cli_run(ray_local, tmp_path_factory) -> tuple[Path, Path, Path]:
    """One `train` through the CLI on data carrying watchers_count; shared by the artifact and seed tests."""
    tmp = tmp_path_factory.mktemp("cli")
    frame = synthetic_dataset(160, seed=11)
    frame["watchers_count"] = frame["stargazers_count"]  # the target's alias: must be dropped
    data = tmp / "with_watchers.csv"
    frame.to_csv(data, index=False)
    out = tmp / "models"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(data),
            "--trials",
            "2",
            "--out",
            str(out),
            "--folds",
            "3",
            "--seed",
            "1",
            "--max-concurrent",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    version_dir = artifact.newest_version(out)
    assert version_dir is not None
    last = own_lines(result.output)
    assert last[-2] == f"artifact: {version_dir}", last[-5:]
    assert last[-1].startswith("held-out: r2_log="), last[-5:]
    return data, version_dir, tmp


def test_cli_train_writes_a_valid_artifact_that_reloads_elsewhere(cli_run, tmp_path) -> None:
    data, version_dir, _ = cli_run
    frame = pd.read_csv(data)
    manifest = artifact.read_manifest(version_dir)
    artifact.verify_checksum(version_dir, manifest)
    artifact.check_compatible(manifest)
    assert manifest.signature is None and manifest.tuning.trials == 2
    assert set(manifest.baseline) == {"median", "default_rf_raw"}
    assert manifest.metrics.holdout.r2_log > manifest.baseline["median"].r2_log
    assert "watchers_count" in json.loads((version_dir / "model.json").read_text())["ignored_columns"]
    for name in (
        "report.md",
        "screening.png",
        "tuning.png",
        "holdout_pred_vs_actual.png",
        "importance.png",
        "screening.csv",
        "screening.md",
        "trials.csv",
        "holdout.txt",
    ):
        assert (version_dir / name).stat().st_size > 0, name
    holdout = (version_dir / "holdout.txt").read_text().split()
    assert protocol.names_digest(holdout) == manifest.model_extra["holdout_split"]["full_names_sha256"]

    sample = frame.head(5)
    pipeline, _ = artifact.load_version(version_dir, None, require_signature=False)
    here = pipeline.predict(sample.drop(columns=["stargazers_count"]))
    script = (
        "import sys, json, pandas as pd; from pathlib import Path; from model_serving import artifact;"
        "p, _ = artifact.load_version(Path(sys.argv[1]), None, require_signature=False);"
        "print(json.dumps(p.predict(pd.read_csv(sys.argv[2]).drop(columns=['stargazers_count'])).tolist()))"
    )
    sample_path = tmp_path / "sample.csv"
    sample.to_csv(sample_path, index=False)
    elsewhere = subprocess.run(
        [sys.executable, "-c", script, str(version_dir), str(sample_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    np.testing.assert_allclose(json.loads(elsewhere.stdout.strip().splitlines()[-1]), here, rtol=1e-12)


def test_same_seed_same_model(ray_local, cli_run) -> None:
    """The CLI run again through the API, same data and seed, max_concurrent_trials=1 (screening skipped: it
    does not touch the model): the same trials, the same params and a byte-identical model.joblib."""
    data, first_dir, tmp = cli_run
    again = train.train(
        train.RunOptions(
            data=data, out=tmp / "again", trials=2, seed=1, folds=3, max_concurrent=1, skip_screening=True
        ),
        echo=lambda _: None,
    )
    first, second = artifact.read_manifest(first_dir), artifact.read_manifest(again.version_dir)
    assert first.params == second.params
    assert first.metrics == second.metrics
    assert first.sha256 == second.sha256


ALIASES = sorted(TARGET_ALIASES)
#: The keys every model.json carries (docs/contracts.md §3).
MANIFEST_KEYS = {"version", "created_at", "sha256", "code_version", "feature_version", "python", "sklearn",
                 "input_columns", "target", "dataset", "metrics", "params", "tuning", "baseline", "signature"}


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "repos.csv"
    frame.to_csv(path, index=False)
    return path


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


def test_artifact_numbers_come_from_the_holdout_and_cv_only_and_no_target_alias_is_a_feature(
    ray_local, tmp_path: Path
) -> None:
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
    assert set(raw) >= MANIFEST_KEYS and raw["signature"] is None
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
