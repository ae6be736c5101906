"""The broker of a production host converged over SSH on a busy host, then rotated while its boot dies.

The rabbitmq role (with the stargazer and supervisor roles it depends on, as production.yml runs them)
converges a namespace host while a busy loop spins on every core of this machine, the whole time:

1. from scratch;
2. with a rotated broker password, after the node was stopped and its AMQP port is held by another process:
   the first boot dies (`eaddrinuse`); the port is freed only once the node's log shows that, and the
   converge must still end with the node up, because the role starts a dead node again and waits for it by
   its protocol, and with the new password set and the old one refused.

That a second converge changes nothing is the rehearsed fleet's test (its converge-2 on both production
hosts, tests/rehearsal): repeating it here under load would double this test's slowest part.

Meanwhile every process's command line is read from /proc: neither password may ever appear on one (any
local user sees them with `ps`), while the rabbitmqctl calls that set and check the password are seen.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, Result, playbook
from tests.playbooks.cmdline_watch import CmdlineWatch
from tests.playbooks.cpu_load import cpu_load
from tests.playbooks.nshost import IP, NamespaceHost
from tests.playbooks.supervisord import stop_supervisord
from tests.support import REPO_ROOT, poll_until, require_executable

PROGRAM = "stargazer-rabbitmq"
AMQP_PORT = 5672
# Generous: two converges on a 2-core host that busy loops (and other test suites) keep saturated.
CONVERGE_TIMEOUT = 1500
LOAD_SECONDS_MAX = 2 * CONVERGE_TIMEOUT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(LOAD_SECONDS_MAX + 600)]
# The rabbitmqctl calls that carry the password today's way or on stdin: the watch must see them run.
PASSWORD_CALLS = ("add_user", "authenticate_user", "change_password")

BROKER_PLAY = [{
    "name": "The broker of a production host (the rabbitmq role and the roles it depends on)",
    "hosts": "production",
    "gather_subset": ["min"],
    "vars": {"stargazer_required_secrets": ["vault_stargazer_broker_password"]},
    "roles": [{"role": "rabbitmq"}],
}]

# Holds 127.0.0.1:PORT inside the namespace until its stdin closes; says "held" once it listens.
HOLD_PORT = """
import socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("held", flush=True)
sys.stdin.read()
"""

# Logs in over AMQP with each password from stdin ({"ok": url, "refused": url}): one line per outcome.
AMQP_LOGIN = """
import json, sys
from kombu import Connection
for expect, url in json.load(sys.stdin).items():
    try:
        conn = Connection(url, connect_timeout=10)
        conn.connect()
        conn.release()
        print(expect, "logged-in")
    except Exception as exc:
        print(expect, "refused", type(exc).__name__)
"""


@dataclass
class BrokerRuns:
    host: NamespaceHost
    paths: dict[str, Path]
    user: str
    passwords: tuple[str, str]
    watch: CmdlineWatch
    first: Result
    boot_died: bool = False
    #: The converge with the rotated password that found the node stopped and its port held.
    rotated: Result | None = None


def _inventory(workdir: Path, host: NamespaceHost, user: str) -> tuple[Path, dict[str, Path]]:
    names = ("app", "home", "etc", "models", "log", "run", "state", "supervisor", "rabbitmq")
    paths = {name: workdir / name for name in names}
    hostvars = {
        "ansible_host": host.address,
        "ansible_user": "root",
        "ansible_become": False,
        "ansible_ssh_private_key_file": str(host.key_file),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "stargazer_install_packages": False,
        "stargazer_user": user,
        "stargazer_group": user,
        "stargazer_home": str(paths["home"]),
        "stargazer_app_dir": str(paths["app"]),
        "stargazer_config_dir": str(paths["etc"]),
        "stargazer_model_dir": str(paths["models"]),
        "stargazer_log_dir": str(paths["log"]),
        "stargazer_run_dir": str(paths["run"]),
        "stargazer_state_dir": str(paths["state"]),
        "supervisor_config_file": str(paths["supervisor"] / "supervisord.conf"),
        "supervisor_conf_dir": str(paths["supervisor"] / "conf.d"),
        "supervisor_socket": str(paths["supervisor"] / "supervisor.sock"),
        "supervisor_pidfile": str(paths["supervisor"] / "supervisord.pid"),
        "supervisor_log_dir": str(paths["supervisor"] / "log"),
        "supervisor_enable_boot_service": False,
        "rabbitmq_disable_distro_service": False,
        "rabbitmq_nodename": f"rabbit-{user}@localhost",
        "rabbitmq_home": str(paths["rabbitmq"] / "home"),
        "rabbitmq_mnesia_base": str(paths["rabbitmq"] / "mnesia"),
        "rabbitmq_log_dir": str(paths["rabbitmq"] / "log"),
        "rabbitmq_conf_dir": str(paths["rabbitmq"] / "etc"),
    }
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    path = inv / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"production": {"hosts": {"prod1": hostvars}}}}}))
    return path, paths


def _vault(workdir: Path, name: str, broker_password: str) -> Path:
    """An ansible-vault encrypted vars file holding the broker password (the vault is how it is deployed)."""
    path = workdir / f"{name}.yml"
    path.write_text(yaml.safe_dump({"vault_stargazer_broker_password": broker_password}))
    password_file = workdir / "vault_pass"
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file), str(path)],
        check=True, capture_output=True, timeout=120,
    )
    return path


class _PortHolder:
    """A process in the namespace that listens on the node's AMQP port, so that the node's boot dies."""

    def __init__(self, host: NamespaceHost, port: int) -> None:
        self._proc = subprocess.Popen(
            [IP, "netns", "exec", host.name, sys.executable, "-c", HOLD_PORT, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=60)


def _log_shows(log: Path, text: str, converge: Future[Result], timeout: float) -> bool:
    """Polls the node's log until `text` is in it; False if the converge ended or time ran out first."""
    def shows() -> bool:
        return log.exists() and text in log.read_text(errors="replace")

    poll_until(lambda: converge.done() or shows(), timeout, interval=0.5)
    return shows()


@pytest.fixture(scope="module")
def broker(workdir: Path, ns_host: NamespaceHost) -> Iterator[BrokerRuns]:
    for tool in ("supervisord", "supervisorctl", "rabbitmq-server"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    user = f"sgzb{secrets.token_hex(2)}"
    inventory, paths = _inventory(workdir, ns_host, user)
    play = workdir / "broker.yml"
    play.write_text(yaml.safe_dump(BROKER_PLAY, sort_keys=False))
    (workdir / "vault_pass").write_text(secrets.token_hex(16) + "\n")
    (workdir / "vault_pass").chmod(0o600)
    passwords = (secrets.token_hex(24), secrets.token_hex(24))
    vaults = (_vault(workdir, "vault", passwords[0]), _vault(workdir, "vault-rotated", passwords[1]))

    def converge(vault: Path) -> Result:
        return playbook(
            workdir, "-i", str(inventory), "--vault-password-file", str(workdir / "vault_pass"),
            "-e", f"@{vault}", str(play), timeout=CONVERGE_TIMEOUT,
        )

    watch = CmdlineWatch({"broker password": passwords[0], "rotated broker password": passwords[1]},
                         markers=PASSWORD_CALLS)
    try:
        with cpu_load(LOAD_SECONDS_MAX), watch:
            runs = BrokerRuns(ns_host, paths, user, passwords, watch, first=converge(vaults[0]))
            if runs.first.returncode == 0:
                _supervisorctl(paths, "stop", PROGRAM)
                holder = _PortHolder(ns_host, AMQP_PORT)
                try:
                    with ThreadPoolExecutor(1) as pool:
                        rotation = pool.submit(converge, vaults[1])
                        log = paths["rabbitmq"] / "log" / f"{PROGRAM}.log"
                        runs.boot_died = _log_shows(log, "eaddrinuse", rotation, CONVERGE_TIMEOUT)
                        holder.release()
                        runs.rotated = rotation.result()
                finally:
                    holder.release()
        yield runs
    finally:
        stop_supervisord(paths["supervisor"] / "supervisord.pid")
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)


def _supervisorctl(paths: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["supervisorctl", "-c", str(paths["supervisor"] / "supervisord.conf"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _succeeded(result: Result | None) -> Result:
    assert result is not None, "an earlier converge failed, so this one did not run"
    assert result.returncode == 0, result.output[-6000:]
    return result


def test_a_converge_under_cpu_load_builds_the_broker(broker: BrokerRuns) -> None:
    first = _succeeded(broker.first)
    assert first.recap()["prod1"]["changed"] >= 5, first.recap()
    print(f"under load: first converge {first.seconds:.0f} s")


def test_a_boot_that_died_is_started_again_and_awaited(broker: BrokerRuns) -> None:
    rotated = _succeeded(broker.rotated)
    assert broker.boot_died, "the node's boot never failed on the held port: the test proved nothing"
    status = _supervisorctl(broker.paths, "status", PROGRAM)
    assert " RUNNING " in status.stdout, status.stdout
    print(f"rotation and restart with a held port under load: {rotated.seconds:.0f} s")


def test_a_rotated_password_is_set_and_the_old_one_refused(broker: BrokerRuns) -> None:
    rotated = _succeeded(broker.rotated)
    assert rotated.recap()["prod1"]["changed"] >= 1, rotated.recap()
    old, new = (f"amqp://stargazer:{p}@127.0.0.1:{AMQP_PORT}/stargazer" for p in broker.passwords)
    result = subprocess.run(
        [IP, "netns", "exec", broker.host.name, sys.executable, "-c", AMQP_LOGIN],
        input=json.dumps({"new": new, "old": old}), capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["new"] == "logged-in", result.stdout
    assert lines["old"].startswith("refused"), result.stdout


def test_no_broker_password_is_ever_on_a_command_line(broker: BrokerRuns) -> None:
    watch = broker.watch
    assert watch.scans > 100, watch.scans
    assert set(PASSWORD_CALLS) <= watch.seen, f"the watch never saw {set(PASSWORD_CALLS) - watch.seen}"
    assert not watch.leaks, [(leak.what, leak.pid, leak.argv) for leak in watch.leaks[:5]]
