"""``make serve`` / ``make serve-stop`` (the commands the Makefile runs): start the whole stack from nothing
but an unsigned trained model, answer through nginx, and stop leaving no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from model_serving import artifact
from model_serving.production_server import services
from tests.model_fixture import build_tiny_version
from tests.support import REPO_ROOT, free_port

from .stack_fixtures import require_stack_tools


def _local(command: str, env: dict[str, str], timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_serving.production_server.local", command],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STARGAZER_", "GITHUB_", "RABBITMQ_", "PROMETHEUS_"))}
    env.update({
        "STARGAZER_VAR_DIR": str(tmp_path / "var"),
        "STARGAZER_MODELS_DIR": str(tmp_path / "models"),
        "STARGAZER_HTTP_PORT": str(port),
        "STARGAZER_CELERY_CONCURRENCY": "1",
        "STARGAZER_GUNICORN_WORKERS": "1",
        "GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
    })
    return env


def _recorded_pids(var: Path) -> list[int]:
    pids = []
    for pid_file in (var / "stack").rglob("*.pid.json"):
        pids.append(json.loads(pid_file.read_text())["pid"])
    beam = var / "stack" / "rabbitmq" / "beam.pid"
    if beam.exists():
        pids.append(int(beam.read_text()))
    return pids


@pytest.mark.integration
def test_make_serve_starts_everything_and_serve_stop_leaves_nothing(tmp_path: Path) -> None:
    require_stack_tools()
    version_dir = build_tiny_version(tmp_path / "models")  # unsigned, as training leaves it
    port = free_port()
    env = _env(tmp_path, port)
    var = tmp_path / "var"

    started = _local("start", env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"ready: http://127.0.0.1:{port}/" in started.stdout
    try:
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["model_version"] == version_dir.name

        # Installed through releases (current -> releases/<version>), signed with the local secret; the
        # training output itself stays untouched (unsigned).
        current = var / "production" / "current"
        assert current.is_symlink() and current.resolve().name == version_dir.name
        secret_file = var / "deploy_secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        artifact.validate_version(current.resolve(), secret_file.read_text().strip().encode())
        assert artifact.read_manifest(version_dir).signature is None

        # The broker password: a 0600 file, in no state file and no log.
        password = (var / "stack" / "broker_password").read_text().strip()
        assert (var / "stack" / "broker_password").stat().st_mode & 0o777 == 0o600
        for path in (var / "stack").rglob("*"):
            if path.is_file() and path.suffix in {".json", ".log"}:
                assert password not in path.read_text(errors="replace"), path

        again = _local("start", env)
        assert again.returncode != 0 and "already running" in again.stderr
        status = _local("status", env)
        assert status.returncode == 0 and "DOWN" not in status.stdout and "/readyz 200" in status.stdout

        pids = _recorded_pids(var)
        assert len(pids) >= 5  # rabbitmq script + VM, celery, gunicorn, nginx
        groups = {json.loads(p.read_text())["pid"] for p in (var / "stack").rglob("*.pid.json")}
    finally:
        stopped = _local("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped:" in stopped.stdout and "nginx" in stopped.stdout
    assert [pid for pid in pids if services._start_ticks(pid) is not None] == []
    assert all(services.group_members(pgid) == [] for pgid in groups)
    assert not services.port_open("127.0.0.1", port)
    assert not (var / "stack" / "stack.json").exists()
    assert "nothing to stop" in _local("stop", env).stdout


def test_make_serve_without_any_model_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    result = _local("start", _env(tmp_path, free_port()), timeout=60)
    assert result.returncode != 0
    assert re.search(r"Error: no model to serve: .*holds no version \(train one: make demo\)", result.stderr)
    assert not (tmp_path / "var" / "stack" / "stack.json").exists()


def test_make_serve_installs_a_newer_training_run_but_never_replaces_a_deployed_model(tmp_path: Path) -> None:
    from model_serving import releases
    from model_serving.production_server import local

    secret = b"local-test-secret"
    models, model_dir = tmp_path / "models", tmp_path / "production"
    first = build_tiny_version(models)
    assert local.ensure_model(model_dir, models, secret) == first.name
    time.sleep(1.1)  # versions are named by the second they were written
    second = build_tiny_version(models, seed=1)
    assert local.ensure_model(model_dir, models, secret) == second.name  # make demo serves what it trained

    # A model that came by deploy (post-receive) stays, even when models/ holds something newer.
    deployed_dir = tmp_path / "deployed"
    staged = tmp_path / "staged"
    shutil.copytree(first, staged / first.name)
    artifact.sign_version(staged / first.name, secret)
    releases.install_release(staged / first.name, deployed_dir, actor="post-receive")
    assert local.ensure_model(deployed_dir, models, secret) == first.name


def test_make_serve_refuses_a_current_signed_with_another_secret(tmp_path: Path) -> None:
    from click import ClickException

    from model_serving import releases
    from model_serving.production_server import local

    version = build_tiny_version(tmp_path / "models")
    artifact.sign_version(version, b"the-production-secret")
    releases.install_release(version, tmp_path / "production", actor="post-receive")
    with pytest.raises(ClickException, match=r"cannot be served: model\.json signature does not match"):
        local.ensure_model(tmp_path / "production", tmp_path / "models", b"another-secret")
