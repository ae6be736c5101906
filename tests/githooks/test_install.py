"""The installer Ansible calls: makes the bare repository with hooks and config; idempotent; clear errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from githooks.install import GIT_SETTINGS
from model_serving import artifact
from model_serving.development_server.deploy import DeployRepo
from tests.support import CHECK_TIMEOUT, DEPLOY_KEYS, INSTALL_SH, REPO_ROOT, install_host, stargazer_lines

pytestmark = pytest.mark.integration


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL_SH), *args], capture_output=True, text=True, timeout=120, check=False)


def test_installs_hooks_and_config_then_changes_nothing(
    tmp_path: Path, public_key_file: Path, git_ready: None
) -> None:
    host = install_host(tmp_path, "h1", public_key_file, keep=3, probe=True)  # probe: the check user runs it
    for name in ("pre-receive", "post-receive"):
        hook = host.repo / "hooks" / name
        assert hook.read_bytes() == (REPO_ROOT / "githooks" / name).read_bytes()
        assert os.access(hook, os.X_OK)
    assert host.git("symbolic-ref", "HEAD").stdout.strip() == "refs/heads/deploy"
    assert host.git("rev-parse", "--is-bare-repository").stdout.strip() == "true"
    for key, value in GIT_SETTINGS.items():
        assert host.git("config", "--local", "--get", key).stdout.strip() == value, key
    assert host.git("config", "--get", "stargazer.keep").stdout.strip() == "3"
    assert host.git("config", "--get", "stargazer.publickeyfile").stdout.strip() == str(public_key_file)
    assert DEPLOY_KEYS.public_text not in (host.repo / "config").read_text()  # only the key file's path
    assert host.model_dir.is_dir()

    same = [
        "--repo", str(host.repo), "--model-dir", str(host.model_dir),
        "--public-key-file", str(public_key_file),
        "--keep", "3", "--check-timeout", f"{CHECK_TIMEOUT:g}", "--prune-expire", "now", "--host-name", "h1",
        "--no-probe",
    ]  # fmt: skip
    again = _install(*same)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "changed=false"

    (host.repo / "hooks" / "pre-receive").write_text("#!/bin/sh\nexit 0\n")  # a tampered hook is restored
    third = _install(*same)
    assert third.stdout.splitlines() == ["installed hook pre-receive", "changed=true"]


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda p: ["--repo", str(p / "plain"), "--model-dir", str(p / "m")], "is not a bare git repository"),
        (
            lambda p: [
                "--repo",
                str(p / "r.git"),
                "--model-dir",
                str(p / "m"),
                "--public-key-file",
                str(p / "nope"),
            ],
            "deploy public key file",
        ),
        (
            lambda p: [
                "--repo",
                str(p / "r.git"),
                "--model-dir",
                str(p / "m"),
                "--python",
                str(p / "nopython"),
            ],
            "no Python interpreter at",
        ),
        (
            lambda p: [
                "--repo",
                str(p / "r.git"),
                "--model-dir",
                str(p / "m"),
                "--check-user",
                "root",
            ],
            "check user root must not be root",
        ),
    ],
    ids=["not_bare", "missing_public_key_file", "missing_python", "root_as_check_user"],
)
def test_bad_installs_fail_with_one_line(tmp_path: Path, git_ready: None, make_args, expected: str) -> None:
    if "must not be root" in expected and os.geteuid() != 0:
        pytest.skip("the installer checks the check user's isolation when it runs as root")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file").write_text("not a repository")
    result = _install(*make_args(tmp_path))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and expected in line, line


def test_host_without_public_key_refuses_every_model(
    tmp_path: Path, versions: list[Path], public_key_file: Path, git_ready: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (artifact.PUBLIC_KEY_ENV, artifact.PUBLIC_KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    host = install_host(tmp_path, "h1", public_key_file)
    host.git("config", "--local", "--unset", "stargazer.publickeyfile")
    dev = DeployRepo(tmp_path / "dev.git")
    dev.ensure()
    commit, _ = dev.commit_version(versions[0], DEPLOY_KEYS.signing)
    result = subprocess.run(
        ["git", f"--git-dir={dev.path}", "push", host.url, f"{commit}:refs/heads/deploy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert stargazer_lines(result.stderr) == [
        f"stargazer: refused refs/heads/deploy ({commit[:10]}): no deploy public key configured on this "
        "host: cannot verify signatures"
    ]
    assert host.current() is None
