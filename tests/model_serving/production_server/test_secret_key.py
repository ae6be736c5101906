"""The Flask secret key made on first boot: every process of a cold start reads the same, non-empty key.

gunicorn starts its workers at once and each reads the settings; with no key in the vault they race to create
``$STARGAZER_STATE_DIR/flask_secret_key``. A key that one worker reads half-written (empty) breaks the form
(its CSRF token cannot be checked by another worker) and ``GET /`` answers 500.
"""

from __future__ import annotations

import multiprocessing
import stat
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from model_serving.production_server import create_app
from model_serving.production_server.settings import ServingSettings, SettingsError

PROCESSES = 8
COLD_STARTS = 25


def _read_key(state_dir: str, barrier: Barrier, answers: multiprocessing.Queue) -> None:
    barrier.wait()  # every process asks at the same moment, as gunicorn's workers do after the fork
    try:
        answers.put(ServingSettings.from_env({"STARGAZER_STATE_DIR": state_dir}).secret_key)
    except Exception as exc:  # reported to the test, which fails with it
        answers.put(f"error: {type(exc).__name__}: {exc}")


def test_concurrent_cold_starts_all_read_the_same_non_empty_key(tmp_path: Path) -> None:
    # forkserver: each start forks from one single-threaded server process, as gunicorn's arbiter forks its
    # workers; a fork of pytest itself could copy a lock some thread of an earlier test holds, and hang.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    for start in range(COLD_STARTS):
        state_dir = tmp_path / f"cold-start-{start}"  # fresh: no key yet
        barrier = context.Barrier(PROCESSES)
        answers = context.Queue()
        processes = [context.Process(target=_read_key, args=(str(state_dir), barrier, answers))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        keys = [answers.get(timeout=180) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert len(set(keys)) == 1 and keys[0] and not keys[0].startswith("error"), (start, keys)
        key_file = state_dir / "flask_secret_key"
        assert key_file.read_text(encoding="utf-8").strip() == keys[0]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert [p.name for p in state_dir.iterdir()] == ["flask_secret_key"]  # no temp file left behind


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flask_secret_key").write_text("\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="flask_secret_key is empty"):
        ServingSettings.from_env({"STARGAZER_STATE_DIR": str(tmp_path)})


def test_the_app_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no Flask secret key"):
        create_app({"STARGAZER": ServingSettings(secret_key="")})
