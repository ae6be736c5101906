"""Fixtures for the deploy tests: production hosts made by the real installer, real ``git push`` (git/git's
t5401 style: push to a throwaway bare repository, then look at what the hooks did).

Every host is a bare repository in a temp dir plus its own model directory; hooks run the real code with this
checkout's interpreter, and the load-and-predict check drops to ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from model_serving import artifact, releases
from model_serving.development_server.deploy import deploy_command
from synthetic.versions import make_versions
from tests.support import DEPLOY_KEYS, REPO_ROOT, DeployKeys, require_executable

INSTALL_SH = REPO_ROOT / "githooks" / "install.sh"
CHECK_TIMEOUT = 60.0  # generous for a loaded 2-core CI machine; the time-limit case sets its own


@dataclass(frozen=True)
class Host:
    """One production host: a bare repository with the hooks, and its STARGAZER_MODEL_DIR."""

    name: str
    repo: Path
    model_dir: Path

    @property
    def url(self) -> str:
        return str(self.repo)

    def current(self) -> str | None:
        return releases.current_version(self.model_dir)

    def log(self) -> list[dict]:
        return releases.read_deploy_log(self.model_dir)

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", f"--git-dir={self.repo}", *args], capture_output=True, text=True, check=False
        )

    def ref(self, name: str) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", name)
        return result.stdout.strip() or None

    def set(self, key: str, value: str) -> None:
        self.git("config", "--local", key, value)


def install_host(
    root: Path, name: str, public_key_file: Path, *, keep: int = 5, probe: bool = False,
    extra: Sequence[str] = ()
) -> Host:
    """Run the real installer (githooks/install.sh), as Ansible does (``extra``: more installer options)."""
    repo, model_dir = root / name / "models.git", root / name / "var-models"
    result = subprocess.run(
        [
            str(INSTALL_SH),
            "--repo",
            str(repo),
            "--model-dir",
            str(model_dir),
            "--public-key-file",
            str(public_key_file),
            "--keep",
            str(keep),
            "--check-timeout",
            f"{CHECK_TIMEOUT:g}",
            "--prune-expire",
            "now",
            "--host-name",
            name,
            "--probe" if probe else "--no-probe",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("changed=true")
    return Host(name, repo, model_dir)


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


def stargazer_lines(text: str) -> list[str]:
    """The hooks' lines as the pusher sees them, without git's ``remote:`` prefix."""
    return [line.removeprefix("remote:").strip() for line in text.splitlines() if "stargazer:" in line]


def signed_copy(
    version: Path, into: Path, *, keys: DeployKeys = DEPLOY_KEYS, edit: dict | None = None
) -> Path:
    """A copy of a version, its manifest optionally edited, then signed (as a deploy would sign it)."""
    target = into / version.name
    shutil.copytree(version, target)
    if edit:
        data = json.loads((target / "model.json").read_text())
        data.update(edit)
        (target / "model.json").write_text(json.dumps(data))
    artifact.sign_version(target, keys.signing)
    return target
