"""The worker's model store in process: load once, reload only when ``current`` moves, never serve garbage."""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from model_serving import artifact, releases
from model_serving.production_server.model_store import ModelStore, ModelUnavailable, RetryState, release_key
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS, Models, gated_load_version, install, wait_until


def test_loads_once_and_reloads_only_when_current_moves(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    events: list[tuple[str | None, str | None, bool]] = []
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public, on_load=lambda *e: events.append(e))
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
    store = ModelStore(tmp_path / "production" / "current", DEPLOY_KEYS.public)
    with pytest.raises(ModelUnavailable, match=r"^no model installed yet$"):  # the API's 503: no path
        store.get()
    assert store.status()["model_version"] is None
    assert store.last_error == f"no model installed: {tmp_path / 'production' / 'current'} does not exist"


def test_corrupt_model_is_refused_before_unpickling(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    joblib_file = model_dir / "current" / artifact.MODEL_FILE
    joblib_file.write_bytes(b"not a pickle, and not the signed bytes")
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public)
    with pytest.raises(ModelUnavailable, match=r"^the installed model release was refused"):
        store.get()
    assert re.search(r"unusable: model.joblib sha256 .* does not match model.json", store.last_error or "")


def test_another_key_and_no_key_are_refused(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    refusals = [(OTHER_DEPLOY_KEYS.public, "signature does not match"),
                (None, "no deploy public key configured")]
    for public_key, why in refusals:
        store = ModelStore(model_dir / "current", public_key)
        with pytest.raises(ModelUnavailable, match="refused"):
            store.get()
        assert why in (store.last_error or "")


def test_bytes_that_do_not_unpickle_are_a_verdict(tmp_path: Path, signed_models: Models) -> None:
    """Signed and hashed garbage (a signing host gone wrong) is refused for good, not retried."""
    garbage = tmp_path / "garbage" / signed_models.v1.name
    shutil.copytree(signed_models.v1, garbage)
    (garbage / artifact.MODEL_FILE).write_bytes(b"\x80\x04 not a pickle")
    manifest = artifact.read_manifest(garbage)
    artifact.write_manifest(garbage, manifest.model_copy(
        update={"sha256": artifact.sha256_of(garbage / artifact.MODEL_FILE)}))
    artifact.sign_version(garbage, DEPLOY_KEYS.signing)
    model_dir = tmp_path / "production"
    install(model_dir, garbage)
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public)
    with pytest.raises(ModelUnavailable, match="refused"):
        store.get()
    assert "model.joblib cannot be loaded" in (store.last_error or "")
    assert store.status()["retry_in"] is None and store._failed_key == release_key(model_dir / "current")


def _raise_soft_time_limit(signum: int, frame: object) -> None:
    raise SoftTimeLimitExceeded()  # what Celery's prefork pool does when a task's soft limit fires


def test_a_load_interrupted_by_the_soft_time_limit_is_retried_not_condemned(
    tmp_path: Path, signed_models: Models,
) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public)
    assert store.get().version == signed_models.v1.name
    gate = tmp_path / "slow-disk"
    gate.touch()
    slow = gated_load_version(tmp_path / "slow", DEPLOY_KEYS.signing, gate, seconds=600)
    install(model_dir, slow)

    previous = signal.signal(signal.SIGALRM, _raise_soft_time_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        started = time.monotonic()
        assert store.get().version == signed_models.v1.name  # the task still gets an answer, from v1
        assert time.monotonic() - started < 60  # the limit ended the blocked load
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    status = store.status()
    assert "interrupted by the task's soft time limit (attempt 1); retrying in 1 s" in status["error"]
    assert status["reason"] == "loading the installed model release was interrupted; it is retried"
    assert status["retry_in"] is not None and store._failed_key is None
    gate.unlink()  # the disk is quick again
    assert store.get().version == signed_models.v1.name and store.loads == 1  # backoff: not at once

    wait_until(lambda: store.get().version == slow.name, 60, "the retried load")
    assert store.loads == 2 and store.get().compiled is not None
    assert store.status()["error"] is None and store.status()["retry_in"] is None


def test_a_fresh_host_whose_first_load_was_cut_short_says_so_without_a_path(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "slow-disk"
    gate.touch()
    model_dir = tmp_path / "production"
    install(model_dir, gated_load_version(tmp_path / "slow", DEPLOY_KEYS.signing, gate, seconds=600))
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public)
    previous = signal.signal(signal.SIGALRM, _raise_soft_time_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(ModelUnavailable) as refused:
            store.get()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert str(refused.value) == "loading the installed model release was interrupted; it is retried"
    assert str(tmp_path) in (store.last_error or "")  # the worker's log and /readyz detail have the path


def test_retry_backoff_doubles_up_to_a_minute(tmp_path: Path) -> None:
    key = ("releases/x", 1, 2, 3)
    state = None
    delays = []
    for _ in range(9):
        state = RetryState.after(state, key)
        delays.append(state.delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert RetryState.after(state, ("releases/y", 1, 2, 3)).delay == 1  # another release starts over


def test_a_broken_new_release_never_replaces_a_working_model(tmp_path: Path, signed_models: Models) -> None:
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    store = ModelStore(model_dir / "current", DEPLOY_KEYS.public)
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
