"""Fixtures of the Ansible tests: a namespace host reached over SSH, and a vault of throwaway secrets."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, close_control_sockets
from tests.playbooks.nshost import IP, SSHD, NamespaceHost
from tests.support import DEPLOY_KEYS, require_executable, require_root


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A world-traversable temp dir: the services under test run as an unprivileged user and read it."""
    path = Path(tempfile.mkdtemp(prefix="sgz-ansible-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    close_control_sockets(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ns_host(workdir: Path) -> Iterator[NamespaceHost]:
    require_root("network namespaces and sshd")
    require_executable("ip", IP)
    require_executable("sshd", SSHD)
    require_executable("ssh-keygen")
    host = NamespaceHost(workdir / "host").start()
    try:
        yield host
    finally:
        close_control_sockets(workdir)
        host.stop()


@pytest.fixture(scope="module")
def vault(workdir: Path) -> tuple[Path, Path, dict[str, str]]:
    """An ansible-vault encrypted vars file with fresh secrets, and its password file."""
    values = {
        "vault_stargazer_deploy_signing_key": DEPLOY_KEYS.signing_text,
        "vault_stargazer_deploy_public_key": DEPLOY_KEYS.public_text,
        "vault_stargazer_broker_password": secrets.token_hex(24),
        "vault_ray_auth_token": secrets.token_hex(32),
        "vault_stargazer_secret_key": secrets.token_hex(32),
        "vault_stargazer_github_tokens": "",
    }
    password = workdir / "vault_pass"
    password.write_text(secrets.token_hex(16) + "\n")
    password.chmod(0o600)
    path = workdir / "vault.yml"
    path.write_text(yaml.safe_dump(values))
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(path)],
        check=True, capture_output=True, timeout=60,
    )
    return path, password, values
