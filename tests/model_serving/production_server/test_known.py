"""The dataset snapshot a model version ships: written, signed, installed, read by the web process, and
refused when its bytes are not the signed ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_collection.dataset import render_csv
from model_serving import artifact, releases
from model_serving.production_server.known import KnownRepositories
from synthetic.dataset import synthetic_dataset
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS


def version_with_snapshot(root: Path) -> tuple[Path, list[dict[str, object]]]:
    """A tiny model written as training writes it, with ``dataset_file``, then signed as deploy signs it."""
    from sklearn.dummy import DummyRegressor

    frame = synthetic_dataset(20, seed=4)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    dataset = root / "repos.csv"
    dataset.write_bytes(render_csv(rows))
    metrics = {"r2_log": 0.0, "r2": 0.0, "mae": 1.0, "rmse": 1.0, "spearman": 0.0}
    version = artifact.write_version(
        DummyRegressor().fit([[0]], [1]), root / "models",
        dataset={"path": str(dataset), "sha256": "0" * 64, "rows": len(rows)},
        metrics={"protocol": "test", "cv": metrics, "holdout": metrics}, params={},
        tuning={"trials": 0, "wall_seconds": 0.0, "nodes": 0, "cpus": 0, "search": "none"}, baseline={},
        dataset_file=dataset,
    )
    artifact.sign_version(version, DEPLOY_KEYS.signing)
    return version, rows


def test_a_release_keeps_the_snapshot_and_the_web_reads_it(tmp_path: Path) -> None:
    version, rows = version_with_snapshot(tmp_path)
    manifest = artifact.read_manifest(version)
    snapshot = artifact.snapshot_ref(manifest)
    assert snapshot is not None and snapshot.rows == len(rows)
    assert artifact.release_files(manifest) == (artifact.MODEL_FILE, artifact.MANIFEST_FILE,
                                                artifact.SNAPSHOT_FILE)
    model_dir = tmp_path / "production"
    releases.install_release(version, model_dir, actor="tests")
    known = KnownRepositories(model_dir, DEPLOY_KEYS.public)
    assert len(known) == len(rows)
    first = rows[0]
    row = known.get(str(first["full_name"]).upper())  # GitHub names are case-insensitive
    assert row is not None
    assert row["stargazers_count"] == first["stargazers_count"]
    assert row["collected_at"] == first["collected_at"]
    assert isinstance(row["has_wiki"], bool) and isinstance(row["forks_count"], int)
    assert known.get("nobody/unknown") is None


def test_a_snapshot_that_is_not_the_signed_one_is_refused(tmp_path: Path) -> None:
    version, rows = version_with_snapshot(tmp_path)
    model_dir = tmp_path / "production"
    release = releases.install_release(version, model_dir, actor="tests")
    snapshot = release / artifact.SNAPSHOT_FILE
    os.chmod(snapshot, 0o644)
    snapshot.write_bytes(snapshot.read_bytes() + b"\0")
    known = KnownRepositories(model_dir, DEPLOY_KEYS.public)
    assert known.get(str(rows[0]["full_name"])) is None  # logged, not used
    with pytest.raises(artifact.ArtifactError, match=r"dataset\.csv\.gz sha256 does not match"):
        artifact.verify_checksum(release, artifact.read_manifest(release))  # pre-receive and installs
    # A manifest verified with another key: the snapshot is not trusted either.
    assert KnownRepositories(model_dir, OTHER_DEPLOY_KEYS.public).get(str(rows[1]["full_name"])) is None


def test_a_version_without_its_listed_snapshot_is_refused(tmp_path: Path) -> None:
    version, _ = version_with_snapshot(tmp_path)
    (version / artifact.SNAPSHOT_FILE).unlink()
    with pytest.raises(artifact.ArtifactError, match=r"dataset\.csv\.gz missing"):
        artifact.validate_version(version, DEPLOY_KEYS.public)


def test_a_written_version_is_readable_by_the_models_directory_group_and_no_one_else(tmp_path: Path) -> None:
    """The development host's handover: Ray's account writes, the deploy account reads through the group."""
    import stat

    version, _ = version_with_snapshot(tmp_path)
    assert stat.S_IMODE(version.stat().st_mode) == 0o750
