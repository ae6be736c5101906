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
from tests.model_fixture import _fake_metrics, synthetic_dataset
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
        metrics={"protocol": "test fixture: metrics are placeholders", "cv": _fake_metrics(0.5),
                 "holdout": _fake_metrics(0.5)},
        params={"n_estimators": 5},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"},
        baseline={"median": _fake_metrics(0.0), "default_rf_raw": _fake_metrics(0.3)},
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
