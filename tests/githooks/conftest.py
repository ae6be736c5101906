"""Fixtures for the deploy tests: production hosts made by the real installer, real ``git push`` (git/git's
t5401 style: push to a throwaway bare repository, then look at what the hooks did). The hosts and pushes
themselves are built by tests/support.py.

Every host is a bare repository in a temp dir plus its own model directory; hooks run the real code with this
checkout's interpreter, and the load-and-predict check drops to ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from model_serving import artifact
from model_serving.development_server.deploy import deploy_command
from synthetic.versions import make_versions
from tests.support import DEPLOY_KEYS, Host, require_executable


@pytest.fixture(scope="session")
def git_ready() -> None:
    require_executable("git", "/usr/bin/git")
    if os.geteuid() == 0:
        require_executable("setpriv", "/usr/bin/setpriv")


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four real, distinct, unsigned model versions (as training leaves them), oldest first."""
    return make_versions(tmp_path_factory.mktemp("models"), 4)


@pytest.fixture
def public_key_file(tmp_path: Path) -> Path:
    return DEPLOY_KEYS.write_public(tmp_path / "deploy_public_key")


@pytest.fixture
def dev_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The development side holds the signing key (deploy keeps it out of the pushes' environment)."""
    monkeypatch.setenv(artifact.SIGNING_KEY_ENV, DEPLOY_KEYS.signing_text)
    monkeypatch.delenv(artifact.SIGNING_KEY_FILE_ENV, raising=False)
    for name in (
        "STARGAZER_APP_DIR",
        "STARGAZER_MODEL_DIR",
        "STARGAZER_DEPLOY_REMOTES",
        "STARGAZER_DEPLOY_REPO",
    ):
        monkeypatch.delenv(name, raising=False)


@dataclass
class DeployResult:
    exit_code: int
    output: str


@pytest.fixture
def deploy(dev_env: None, git_ready: None, tmp_path: Path) -> Iterator:
    """Run the real deploy command in-process (click's runner), against a per-test deploy repository."""
    runner = CliRunner()
    dev_repo = tmp_path / "deploy.git"

    def run(*args: str, models: Path, remotes: list[Host | str], repo: Path = dev_repo) -> DeployResult:
        argv = [*args, "--models", str(models), "--repo", str(repo)]
        for host in remotes:
            argv += ["--remote", host.url if isinstance(host, Host) else host]
        result = runner.invoke(deploy_command, argv, catch_exceptions=False)
        return DeployResult(result.exit_code, result.output)

    yield run
