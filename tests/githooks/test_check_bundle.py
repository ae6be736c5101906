"""The load check's stdin bundle carries the version whole: a model that ships its training dataset
(``dataset.csv.gz``, listed with its sha256 in the signed model.json) passes the check, and a bundle cut short
inside the snapshot is refused in one line. (Every model ``train`` writes ships one; with only model.json and
model.joblib on stdin, the child refused each of them: "dataset.csv.gz missing".)"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestRegressor

from githooks import check_model
from model_serving import artifact, features
from synthetic.dataset import synthetic_dataset
from synthetic.versions import build_tiny_version, placeholder_metrics
from tests.support import REPO_ROOT


def _version_with_snapshot(models: Path) -> Path:
    data = synthetic_dataset(200, 3)
    csv = models / "train.csv"
    models.mkdir(parents=True, exist_ok=True)
    data.to_csv(csv, index=False)
    pipeline = features.build_pipeline(RandomForestRegressor(n_estimators=5, random_state=3, n_jobs=1))
    pipeline.fit(features.select_input(data), features.target_of(data))
    return artifact.write_version(
        pipeline, models, dataset={"path": str(csv), "sha256": artifact.sha256_of(csv), "rows": len(data)},
        metrics={"protocol": "test fixture: metrics are placeholders", "cv": placeholder_metrics(0.5),
                 "holdout": placeholder_metrics(0.5)},
        params={"n_estimators": 5},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={"median": placeholder_metrics(0.0), "default_rf_raw": placeholder_metrics(0.3)},
        dataset_file=csv,
    )


def test_a_version_with_its_dataset_snapshot_passes_the_load_check(tmp_path: Path) -> None:
    version = _version_with_snapshot(tmp_path / "models")
    assert (version / artifact.SNAPSHOT_FILE).is_file()
    sandbox = check_model.Sandbox(user=None, python=Path(sys.executable), app_dir=REPO_ROOT, memory_mb=4096)
    result = check_model.run_check(version, sandbox=sandbox, timeout=120)
    assert result.ok, result.message


def test_the_bundle_round_trips_and_a_cut_snapshot_is_refused(tmp_path: Path) -> None:
    version = _version_with_snapshot(tmp_path / "models")
    bundle = tmp_path / "bundle"
    check_model.write_bundle(version, bundle)
    received = tmp_path / "received"
    received.mkdir()
    check_model.receive(io.BytesIO(bundle.read_bytes()), received)
    for name in (artifact.MANIFEST_FILE, artifact.SNAPSHOT_FILE, artifact.MODEL_FILE):
        assert (received / name).read_bytes() == (version / name).read_bytes(), name

    header, _, rest = bundle.read_bytes().partition(b"\n")
    manifest_size = int(header.split()[0])
    cut = header + b"\n" + rest[: manifest_size + 10]
    (tmp_path / "cut").mkdir()
    with pytest.raises(ValueError, match="ends inside the dataset snapshot"):
        check_model.receive(io.BytesIO(cut), tmp_path / "cut")


def _evalset(path: Path) -> Path:
    """An evaluation set as the evalset command writes it: dataset columns, gzipped, unseen names."""
    import gzip

    from data_collection.dataset import render_csv

    frame = synthetic_dataset(60, 21)
    frame["full_name"] = [f"held-out/repo{i}" for i in range(len(frame))]
    rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in frame.to_dict("records")]
    path.write_bytes(gzip.compress(render_csv(rows)))
    return path


def test_the_gate_bundle_round_trips_and_the_child_scores_both_models(tmp_path: Path) -> None:
    import joblib

    from githooks import gate

    pushed = _version_with_snapshot(tmp_path / "models")
    serving = build_tiny_version(tmp_path / "serving", n_estimators=4, seed=5)
    evalset = _evalset(tmp_path / "evalset-1.csv.gz")
    inputs = check_model.GateInputs(evalset, serving)
    bundle = tmp_path / "bundle"
    check_model.write_bundle(pushed, bundle, inputs)
    (tmp_path / "received").mkdir()
    received = check_model.receive(io.BytesIO(bundle.read_bytes()), tmp_path / "received")
    assert received.evalset is not None and received.evalset.read_bytes() == evalset.read_bytes()
    assert received.serving is not None
    for name in (artifact.MANIFEST_FILE, artifact.MODEL_FILE):
        assert (received.serving / name).read_bytes() == (serving / name).read_bytes(), name
    model = artifact.MODEL_FILE
    assert (received.version_dir / model).read_bytes() == (pushed / model).read_bytes()

    sandbox = check_model.Sandbox(user=None, python=Path(sys.executable), app_dir=REPO_ROOT, memory_mb=4096)
    result = check_model.run_check(pushed, sandbox=sandbox, timeout=120, gate_inputs=inputs)
    assert result.ok, result.message
    frame = gate.read_evalset(evalset)
    for key, version in (("pushed", pushed), ("serving", serving)):
        expected = gate.score(joblib.load(version / artifact.MODEL_FILE), frame)
        assert gate.Scores.from_json(result.details["gate"][key]) == expected, key
    assert result.details["gate"]["serving_version"] == serving.name


def test_a_bundle_with_half_a_serving_model_is_refused(tmp_path: Path) -> None:
    version = _version_with_snapshot(tmp_path / "models")
    bundle = tmp_path / "bundle"
    check_model.write_bundle(version, bundle)
    header, _, rest = bundle.read_bytes().partition(b"\n")
    forged = header + b" 10 5 0\n" + rest  # an eval set and a serving model.json, but no serving model
    (tmp_path / "r").mkdir()
    with pytest.raises(ValueError, match="half a serving model"):
        check_model.receive(io.BytesIO(forged), tmp_path / "r")
