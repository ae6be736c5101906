"""The Celery workers' own account, as site.yml made it on the rehearsed fleet: the process that unpickles
models reads no secret.

The session's rehearsed fleet (tests/rehearsed_fleet.py) converged every tier over SSH, deployed a model and
served predictions with it. On each production host the Celery program runs as its own account; its
credentials are read from /proc, and with exactly those (setpriv) the test opens what a hostile model would
want: the Flask key and the GitHub tokens of its host, its own program file (the broker password), and the
signing key on the development host (the namespaces share one filesystem, as the demo's one host does).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from rehearsal import hosts
from tests.rehearsed_fleet import RUN_TIMEOUT, RehearsedFleet
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(RUN_TIMEOUT + 900)]

PROGRAM = "stargazer-celery"
PRODUCTION = ("p1", "p2")


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


def _worker_pid(fleet: RehearsedFleet, key: str) -> int:
    def running() -> int | None:
        answer = fleet.supervisorctl(key, "pid", PROGRAM).stdout.strip()
        return int(answer) if answer.isdigit() and int(answer) > 0 else None

    return wait_until(running, timeout=120, what=f"{PROGRAM} running under supervisor on {key}")


@pytest.mark.parametrize("key", PRODUCTION)
def test_the_worker_account_is_outside_the_service_group_and_owns_only_the_shadow_logs(
    rehearsed_fleet: RehearsedFleet, key: str
) -> None:
    assert rehearsed_fleet.returncode == 0, rehearsed_fleet.output[-5000:]
    worker_user, service_user = hosts.account(rehearsed_fleet.prefix, f"{key}-w"), hosts.account(
        rehearsed_fleet.prefix, key
    )
    worker = pwd.getpwnam(worker_user)
    service_gid = grp.getgrnam(service_user).gr_gid
    assert service_gid not in os.getgrouplist(worker_user, worker.pw_gid)
    models = rehearsed_fleet.tree(key) / "production"
    shadow_logs = (models / "shadow-logs").stat()
    assert (shadow_logs.st_uid, shadow_logs.st_gid) == (worker.pw_uid, service_gid)
    assert stat.S_IMODE(shadow_logs.st_mode) == 0o2750
    assert models.stat().st_uid == pwd.getpwnam(service_user).pw_uid and not models.stat().st_mode & 0o002
    conf = (rehearsed_fleet.tree(key) / "supervisor" / "conf.d" / f"{PROGRAM}.conf").read_text()
    assert f"\nuser={worker_user}\n" in conf


@pytest.mark.parametrize("key", PRODUCTION)
def test_the_running_worker_cannot_read_the_flask_key_tokens_or_signing_key(
    rehearsed_fleet: RehearsedFleet, key: str
) -> None:
    assert rehearsed_fleet.returncode == 0, rehearsed_fleet.output[-5000:]
    tree = rehearsed_fleet.tree(key)
    credentials = _credentials(_worker_pid(rehearsed_fleet, key))
    worker = pwd.getpwnam(hosts.account(rehearsed_fleet.prefix, f"{key}-w"))
    assert credentials[0] == worker.pw_uid, "the Celery program does not run as the worker account"
    service_gid = grp.getgrnam(hosts.account(rehearsed_fleet.prefix, key)).gr_gid
    assert service_gid not in [*credentials[2], credentials[1]]
    signing_key = rehearsed_fleet.tree("dev") / "deploy-key" / "deploy_signing_key"
    for secret in (tree / "etc" / "secret_key", tree / "etc" / "github_tokens", signing_key,
                   tree / "supervisor" / "conf.d" / f"{PROGRAM}.conf"):
        assert secret.is_file(), secret
        assert _as(credentials, "cat", str(secret)).returncode != 0, f"the worker can read {secret}"
    # What it needs: the public key, the releases (it serves the deployed one), its one writable directory.
    public = _as(credentials, "cat", str(tree / "etc-public" / "deploy_public_key"))
    assert public.stdout.strip() == rehearsed_fleet.public["vault_stargazer_deploy_public_key"]
    assert _as(credentials, "ls", str(tree / "production" / "current" / "")).returncode == 0
    assert _as(credentials, "touch", str(tree / "production" / "shadow-logs" / "probe")).returncode == 0
    assert _as(credentials, "touch", str(tree / "production" / "current-by-worker")).returncode != 0
