"""The worker's model store in process: load once, reload only when ``current`` moves, never serve garbage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_serving import artifact, releases
from model_serving.production_server.model_store import ModelStore, ModelUnavailable, release_key
from tests.model_serving.production_server.conftest import DEPLOY_SECRET, Models, install


def test_loads_once_and_reloads_only_when_current_moves(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    events: list[tuple[str | None, str | None, bool]] = []
    store = ModelStore(model_dir / "current", DEPLOY_SECRET, on_load=lambda *e: events.append(e))
    first = store.get()
    assert first.version == signed_models.v1.name
    assert store.get() is first and store.loads == 1  # the cheap check found nothing new
    install(model_dir, signed_models.v2)
    second = store.get()
    assert second.version == signed_models.v2.name and store.loads == 2
    v1, v2 = signed_models.v1.name, signed_models.v2.name
    assert events == [(None, v1, True), (v1, v2, True)]
    # A rollback (current back to the older release) is a change too.
    releases.install_release(model_dir / "releases" / signed_models.v1.name, model_dir, actor="tests")
    assert store.get().version == signed_models.v1.name


def test_no_model_installed_is_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "production" / "current", DEPLOY_SECRET)
    with pytest.raises(ModelUnavailable, match=r"no model installed: .*current does not exist"):
        store.get()
    assert store.status()["model_version"] is None


def test_corrupt_model_is_refused_before_unpickling(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    joblib_file = model_dir / "current" / artifact.MODEL_FILE
    joblib_file.write_bytes(b"not a pickle, and not the signed bytes")
    store = ModelStore(model_dir / "current", DEPLOY_SECRET)
    with pytest.raises(ModelUnavailable, match=r"unusable: model.joblib sha256 .* does not match model.json"):
        store.get()


def test_wrong_secret_and_unsigned_are_refused(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    with pytest.raises(ModelUnavailable, match="signature does not match"):
        ModelStore(model_dir / "current", b"another secret").get()
    with pytest.raises(ModelUnavailable, match="no deploy secret configured"):
        ModelStore(model_dir / "current", None).get()


def test_a_broken_new_release_never_replaces_a_working_model(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    store = ModelStore(model_dir / "current", DEPLOY_SECRET)
    assert store.get().version == signed_models.v1.name
    broken = tmp_path / "broken"
    shutil.copytree(signed_models.v2, broken)
    # Install passes its own checks (it does not verify the signature), then the bytes rot on disk.
    releases.install_release(broken, model_dir, actor="tests")
    (model_dir / "current" / artifact.MODEL_FILE).write_bytes(b"rotten")
    assert store.get().version == signed_models.v1.name  # still answering, with the version it has
    assert "does not match model.json" in (store.status()["error"] or "")
    # The failed release is not re-hashed before every task; a new switch is tried again.
    key = release_key(model_dir / "current")
    assert store._failed_key == key
    install(model_dir, signed_models.v2)
    assert store.get().version == signed_models.v2.name
    assert store.status()["error"] is None
