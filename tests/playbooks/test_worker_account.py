"""The Celery workers' own account, converged for real: the process that unpickles models reads no secret.

Ansible runs production.yml's own variables with the roles that make the workers (deploy_key, celery_worker,
and under them stargazer, common, supervisor) on this machine (connection local), twice: the second run must
change nothing. In the same run, as on the demo's one host, the development play's deploy side writes the
signing key (deploy_client, deploy_key), and the Flask secret key and the GitHub tokens are written where and
how the gunicorn role writes them. supervisord then runs the real Celery program file; the worker process has
no broker to reach and keeps retrying, which is all this test needs of it. Its credentials are read from
/proc, and with exactly those (setpriv) the test opens what a hostile model would want.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import stat
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, PLAYBOOKS, Result, playbook
from tests.playbooks.supervisord import stop_supervisord
from tests.support import DEPLOY_KEYS, REPO_ROOT, require_executable, require_root, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

PROGRAM = "stargazer-celery"


@dataclass
class WorkerHost:
    workdir: Path
    service_user: str
    worker_user: str
    first: Result
    second: Result

    def path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["supervisorctl", "-c", str(self.path("supervisor", "supervisord.conf")), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )


def _play(name: str, roles: tuple[str, ...], workdir: Path) -> dict:
    """The tier playbook's play (same hosts, vars) with only ``roles``."""
    [play] = yaml.safe_load((PLAYBOOKS / name).read_text())
    play["roles"] = [r for r in play["roles"] if r["role"] in roles]
    assert [r["role"] for r in play["roles"]] == list(roles)
    play["become"] = False  # the test already runs as root, over the local connection
    return play


def _head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def worker_host(workdir: Path) -> Iterator[WorkerHost]:
    require_root("creating the service, worker and deploy accounts")
    require_executable("setpriv", "/usr/bin/setpriv")
    require_executable("supervisord", "/usr/bin/supervisord")
    require_executable("python3", "/usr/bin/python3")
    tag = secrets.token_hex(2)
    service, worker, deployer = f"sgzs{tag}", f"sgzw{tag}", f"sgzd{tag}"
    paths = {name: workdir / name for name in ("app", "home", "etc", "models", "log", "run", "state",
                                               "supervisor", "worker-home", "deploy-home")}
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(BIN / "python"),
        "stargazer_install_packages": False,
        "stargazer_user": service,
        "stargazer_group": service,
        "stargazer_home": str(paths["home"]),
        "stargazer_app_dir": str(paths["app"]),
        "stargazer_config_dir": str(paths["etc"]),
        "stargazer_model_dir": str(paths["models"]),
        "stargazer_log_dir": str(paths["log"]),
        "stargazer_run_dir": str(paths["run"]),
        "stargazer_state_dir": str(paths["state"]),
        "stargazer_deploy_public_key_file": str(workdir / "etc-public" / "deploy_public_key"),
        "stargazer_broker_port": 9,  # no broker: the worker keeps retrying, which is all the test needs
        "common_app_repo": f"file://{REPO_ROOT}",
        "common_app_version": _head_commit(),
        "common_python": "/usr/bin/python3",
        "common_pip_extra_args": "--no-index",
        "common_venv_extra_site_dirs": [sysconfig.get_paths()["purelib"]],
        "supervisor_config_file": str(paths["supervisor"] / "supervisord.conf"),
        "supervisor_conf_dir": str(paths["supervisor"] / "conf.d"),
        "supervisor_socket": str(paths["supervisor"] / "supervisor.sock"),
        "supervisor_pidfile": str(paths["supervisor"] / "supervisord.pid"),
        "supervisor_log_dir": str(paths["supervisor"] / "log"),
        "supervisor_enable_boot_service": False,
        "celery_worker_user": worker,
        "celery_worker_group": worker,
        "celery_worker_home": str(paths["worker-home"]),
        "celery_worker_concurrency": 1,
        "deploy_client_user": deployer,
        "deploy_client_group": deployer,
        "deploy_client_home": str(paths["deploy-home"]),
        "deploy_client_signing_key_file": str(workdir / "etc-deploy" / "deploy_signing_key"),
        "vault_stargazer_deploy_signing_key": DEPLOY_KEYS.signing_text,
        "vault_stargazer_deploy_public_key": DEPLOY_KEYS.public_text,
        "vault_stargazer_broker_password": secrets.token_hex(24),
        "vault_stargazer_secret_key": secrets.token_hex(32),
        "vault_ray_auth_token": secrets.token_hex(32),
    }
    inventory = {"all": {"children": {"production": {"hosts": {"prod1": host}},
                                      "development": {"hosts": {"dev1": host}}}}}
    inv = workdir / "hosts.yml"
    inv.write_text(yaml.safe_dump(inventory))
    site = workdir / "worker-site.yml"
    web_secrets = {
        "name": "Write the web processes' secrets where and how the gunicorn role writes them",
        "hosts": "production",
        "become": False,
        "gather_facts": False,
        "tasks": [{
            "name": "Write {{ item }}",
            "ansible.builtin.copy": {"content": "{{ lookup('ansible.builtin.password', '/dev/null') }}\n",
                                     "dest": "{{ stargazer_config_dir }}/{{ item }}", "owner": "root",
                                     "group": "{{ stargazer_group }}", "mode": "0640", "force": False},
            "loop": ["secret_key", "github_tokens"],
        }],
    }
    site.write_text(yaml.safe_dump([
        _play("development.yml", ("deploy_client", "deploy_key"), workdir),
        _play("production.yml", ("deploy_key", "celery_worker"), workdir),
        web_secrets,
    ], sort_keys=False))
    try:
        first = playbook(workdir, "-i", str(inv), str(site), timeout=900)
        assert first.returncode == 0, first.output[-4000:]
        second = playbook(workdir, "-i", str(inv), str(site), timeout=900)
        assert second.returncode == 0, second.output[-4000:]
        yield WorkerHost(workdir, service, worker, first, second)
    finally:
        stop_supervisord(paths["supervisor"] / "supervisord.pid")
        for name in (deployer, worker, service):
            subprocess.run(["userdel", name], capture_output=True, check=False, timeout=60)
            subprocess.run(["groupdel", name], capture_output=True, check=False, timeout=60)


def _credentials(pid: int) -> tuple[int, int, list[int]]:
    """The real uid, gid and supplementary groups of a running process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    groups = [int(g) for g in fields["Groups"].split()]
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]), groups


def _as(credentials: tuple[int, int, list[int]], *argv: str) -> subprocess.CompletedProcess[str]:
    uid, gid, groups = credentials
    group_option = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", group_option, "--", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


def _worker_pid(host: WorkerHost) -> int:
    def running() -> int | None:
        answer = host.supervisorctl("pid", PROGRAM).stdout.strip()
        return int(answer) if answer.isdigit() and int(answer) > 0 else None

    return wait_until(running, timeout=120, what=f"{PROGRAM} running under supervisor")


def test_converges_and_the_second_run_changes_nothing(worker_host: WorkerHost) -> None:
    assert worker_host.second.recap()["prod1"]["changed"] == 0, worker_host.second.output[-4000:]
    assert DEPLOY_KEYS.signing_text not in worker_host.first.output + worker_host.second.output


def test_the_worker_account_is_outside_the_service_group_and_owns_only_the_shadow_logs(
    worker_host: WorkerHost,
) -> None:
    worker = pwd.getpwnam(worker_host.worker_user)
    service_gid = grp.getgrnam(worker_host.service_user).gr_gid
    assert service_gid not in os.getgrouplist(worker_host.worker_user, worker.pw_gid)
    shadow_logs = worker_host.path("models", "shadow-logs").stat()
    assert (shadow_logs.st_uid, shadow_logs.st_gid) == (worker.pw_uid, service_gid)
    assert stat.S_IMODE(shadow_logs.st_mode) == 0o2750
    models = worker_host.path("models").stat()
    assert models.st_uid == pwd.getpwnam(worker_host.service_user).pw_uid and not models.st_mode & 0o002
    conf = (worker_host.path("supervisor", "conf.d") / f"{PROGRAM}.conf").read_text()
    assert f"\nuser={worker_host.worker_user}\n" in conf


def test_the_running_worker_cannot_read_the_flask_key_tokens_or_signing_key(worker_host: WorkerHost) -> None:
    pid = _worker_pid(worker_host)
    credentials = _credentials(pid)
    worker = pwd.getpwnam(worker_host.worker_user)
    assert credentials[0] == worker.pw_uid, "the Celery program does not run as the worker account"
    assert grp.getgrnam(worker_host.service_user).gr_gid not in credentials[2] + [credentials[1]]
    for secret in (worker_host.path("etc", "secret_key"), worker_host.path("etc", "github_tokens"),
                   worker_host.path("etc-deploy", "deploy_signing_key"),
                   worker_host.path("supervisor", "conf.d", f"{PROGRAM}.conf")):
        assert secret.is_file(), secret
        assert _as(credentials, "cat", str(secret)).returncode != 0, f"the worker can read {secret}"
    # What it needs: the public key, the releases, and its one writable directory.
    public = _as(credentials, "cat", str(worker_host.path("etc-public", "deploy_public_key")))
    assert public.stdout.strip() == DEPLOY_KEYS.public_text
    assert _as(credentials, "ls", str(worker_host.path("models"))).returncode == 0
    assert _as(credentials, "touch", str(worker_host.path("models", "shadow-logs", "probe"))).returncode == 0
    assert _as(credentials, "touch", str(worker_host.path("models", "current-by-worker"))).returncode != 0
