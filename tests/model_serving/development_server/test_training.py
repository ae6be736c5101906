"""Screening, tuning and the whole train run on a real local Ray (num_cpus=2), with tiny data and trials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from ray import tune

from model_serving import artifact
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


def test_cli_bad_data_is_one_line_and_exit_status(tmp_path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = CliRunner().invoke(main, ["train", "--data", str(path), "--trials", "1", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {path}: empty file (no header, no rows)"]


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
