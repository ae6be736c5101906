"""The development host's deploy account, converged for real: Ray's account cannot read the secret or the key.

Ansible runs the development play's own variables (read from playbooks/development.yml, so what is tested is
what is deployed) with the roles that own the deploy side (deploy_client, deploy_key, and stargazer under
them) on this machine (connection local), twice: the second run must change nothing. Every path is moved
into a temporary directory; the two accounts get fresh names. Then, as each account (setpriv), the test
reads what it may and may not: Ray's account reaches neither the signing key nor the SSH deploy key, the
deploy account reaches both.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, PLAYBOOKS, Result, playbook
from tests.support import DeployKeys, require_executable, require_root

pytestmark = pytest.mark.integration


@dataclass
class DeploySide:
    workdir: Path
    ray_user: str
    deploy_user: str
    secret: str
    first: Result
    second: Result

    @property
    def secret_file(self) -> Path:
        return self.workdir / "etc-deploy" / "deploy_signing_key"

    @property
    def key_file(self) -> Path:
        return self.workdir / "deploy-home" / ".ssh" / "id_ed25519"

    def can_read(self, user: str, path: Path) -> bool:
        return self.run_as(user, "cat", str(path)).returncode == 0

    def run_as(self, user: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
        entry = pwd.getpwnam(user)
        return subprocess.run(
            ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *argv],
            capture_output=True,
            timeout=30,
            check=False,
        )


def _development_play(workdir: Path) -> Path:
    """development.yml's play with only the deploy-side roles (same hosts, become, vars)."""
    [play] = yaml.safe_load((PLAYBOOKS / "development.yml").read_text())
    play["roles"] = [r for r in play["roles"] if r["role"] in ("deploy_client", "deploy_key")]
    assert [r["role"] for r in play["roles"]] == ["deploy_client", "deploy_key"]
    play["become"] = False  # the test already runs as root, over the local connection
    path = workdir / "deploy-side.yml"
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


@pytest.fixture(scope="module")
def deploy_side(workdir: Path) -> Iterator[DeploySide]:
    require_root("creating the Ray and deploy accounts")
    require_executable("setpriv", "/usr/bin/setpriv")
    tag = secrets.token_hex(2)
    ray_user, deploy_user = f"sgzr{tag}", f"sgzk{tag}"
    secret = DeployKeys.generate().signing_text
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(BIN / "python"),
        "stargazer_install_packages": False,
        "stargazer_user": ray_user,
        "stargazer_group": ray_user,
        "stargazer_home": str(workdir / "ray-home"),
        "stargazer_app_dir": str(workdir / "app"),
        "stargazer_config_dir": str(workdir / "etc"),
        "stargazer_log_dir": str(workdir / "log"),
        "stargazer_run_dir": str(workdir / "run"),
        "stargazer_state_dir": str(workdir / "state"),
        "deploy_client_user": deploy_user,
        "deploy_client_group": deploy_user,
        "deploy_client_home": str(workdir / "deploy-home"),
        "deploy_client_signing_key_file": str(workdir / "etc-deploy" / "deploy_signing_key"),
        "deploy_client_models_dir": str(workdir / "handover"),
        "vault_stargazer_deploy_signing_key": secret,
        "vault_ray_auth_token": secrets.token_hex(32),
    }
    inventory = {
        "all": {
            "children": {
                "development": {"hosts": {"dev": local}},
                "production": {
                    "hosts": {
                        "prod1": {
                            "ansible_host": "10.9.0.31",
                            "private_ip": "10.9.1.31",
                            "stargazer_user": "stargazer",
                        }
                    }
                },
            }
        }
    }
    inv = workdir / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    play = _development_play(workdir)
    try:
        first = playbook(workdir, "-i", str(inv), str(play))
        assert first.returncode == 0, first.output[-4000:]
        second = playbook(workdir, "-i", str(inv), str(play))
        assert second.returncode == 0, second.output[-4000:]
        yield DeploySide(workdir, ray_user, deploy_user, secret, first, second)
    finally:
        for name in (deploy_user, ray_user):
            subprocess.run(["userdel", name], capture_output=True, check=False, timeout=60)
            subprocess.run(["groupdel", name], capture_output=True, check=False, timeout=60)


def test_converges_and_the_second_run_changes_nothing(deploy_side: DeploySide) -> None:
    assert deploy_side.first.recap()["dev"]["changed"] >= 5
    assert deploy_side.second.recap()["dev"]["changed"] == 0, deploy_side.second.output[-4000:]
    assert deploy_side.secret not in deploy_side.first.output + deploy_side.second.output


def test_secret_and_key_belong_to_the_deploy_account_only(deploy_side: DeploySide) -> None:
    deploy_gid = grp.getgrnam(deploy_side.deploy_user).gr_gid
    secret_dir = deploy_side.secret_file.parent
    for path, uid, gid, mode in (
        (secret_dir, 0, deploy_gid, 0o750),
        (deploy_side.secret_file, 0, deploy_gid, 0o640),
        (
            deploy_side.workdir / "deploy-home",
            pwd.getpwnam(deploy_side.deploy_user).pw_uid,
            deploy_gid,
            0o700,
        ),
        (deploy_side.key_file, pwd.getpwnam(deploy_side.deploy_user).pw_uid, deploy_gid, 0o600),
    ):
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode), path
    assert deploy_side.secret_file.read_text().strip() == deploy_side.secret
    ray = pwd.getpwnam(deploy_side.ray_user)
    assert deploy_gid not in os.getgrouplist(deploy_side.ray_user, ray.pw_gid)
    assert ray.pw_gid not in os.getgrouplist(deploy_side.deploy_user, deploy_gid)


def test_ray_account_reads_neither_secret_nor_key_the_deploy_account_reads_both(
    deploy_side: DeploySide,
) -> None:
    for path in (deploy_side.secret_file, deploy_side.key_file):
        assert not deploy_side.can_read(deploy_side.ray_user, path), f"Ray's account can read {path}"
        assert deploy_side.can_read(deploy_side.deploy_user, path), f"the deploy account cannot read {path}"


def test_deploy_settings_point_the_deploy_command_at_its_secret_repo_and_remotes(
    deploy_side: DeploySide,
) -> None:
    env_file = deploy_side.workdir / "deploy-home" / "deploy.env"
    info = env_file.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
        0,
        grp.getgrnam(deploy_side.deploy_user).gr_gid,
        0o640,
    )
    settings = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["STARGAZER_DEPLOY_SIGNING_KEY_FILE"] == str(deploy_side.secret_file)
    assert settings["STARGAZER_DEPLOY_REPO"] == str(deploy_side.workdir / "deploy-home" / "deploy.git")
    assert settings["STARGAZER_DEPLOY_REMOTES"] == "stargazer@10.9.1.31:/srv/git/stargazer-deploy.git"
    assert deploy_side.secret not in env_file.read_text()


def test_a_version_ray_trains_into_the_handover_directory_is_read_by_deploy_and_by_no_one_else(
    deploy_side: DeploySide,
) -> None:
    handover = deploy_side.workdir / "handover"
    info = handover.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
        pwd.getpwnam(deploy_side.ray_user).pw_uid,
        grp.getgrnam(deploy_side.deploy_user).gr_gid,
        0o2750,
    )
    # What artifact.write_version does as Ray's account: a 0750 version directory, files at the umask.
    version = handover / "20260101T000000Z-0123abcd"
    made = deploy_side.run_as(
        deploy_side.ray_user, "sh", "-c", f"mkdir -m 0750 {version} && echo model > {version}/model.joblib"
    )
    assert made.returncode == 0, made.stderr
    model = version / "model.joblib"
    assert deploy_side.can_read(deploy_side.deploy_user, model), "deploy cannot read what Ray trained"
    assert not deploy_side.can_read("nobody", model), "an account outside both can read a trained version"
    # Ray's account reads nothing of the deploy account's through the handover either.
    assert not deploy_side.can_read(deploy_side.ray_user, deploy_side.key_file)
