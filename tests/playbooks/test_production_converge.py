"""The production tier converged for real, over SSH, onto a host in its own network namespace.

site.yml's production play runs twice against the namespace host: the first run must build everything,
the second must change nothing (idempotence, read from the PLAY RECAP). Then the result is checked from the
outside as a user and an operator would: nginx answers on the host's own address and passes /healthz to
gunicorn, RabbitMQ takes the application's account over AMQP and refuses guest, supervisor runs every
program, the secrets are where they belong with the right modes and never appear in Ansible's output.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import Result, playbook
from tests.playbooks.cmdline_watch import CmdlineWatch
from tests.playbooks.nshost import NamespaceHost
from tests.playbooks.supervisord import stop_supervisord
from tests.support import REPO_ROOT, require_executable

# pytest-timeout counts the module fixture (two converges of up to 900 s each) in the first test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2 * 900 + 600)]

HTTP_PORT = 8080
HTTPS_PORT = 8443
# The rabbitmqctl calls that handle the broker password: the command-line watch must see them run.
PASSWORD_CALLS = ("add_user", "authenticate_user")
PROGRAMS = ("stargazer-rabbitmq", "stargazer-celery", "stargazer-gunicorn", "stargazer-nginx")


@dataclass
class Converged:
    host: NamespaceHost
    paths: dict[str, Path]
    hostvars: dict[str, object]
    secrets: dict[str, str]
    first: Result
    second: Result
    watch: CmdlineWatch

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["supervisorctl", "-c", str(self.paths["supervisor"] / "supervisord.conf"), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )


def _head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _write_inventory(workdir: Path, host: NamespaceHost, user: str) -> tuple[Path, dict[str, Path], dict]:
    """A one-host inventory: the repo's group_vars, every path and port pointed into workdir."""
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    names = ("app", "home", "etc", "models", "log", "run", "state", "supervisor", "rabbitmq", "nginx", "git")
    paths = {name: workdir / name for name in names}
    hostvars: dict[str, object] = {
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
        "stargazer_http_port": HTTP_PORT,
        "nginx_https_listen": HTTPS_PORT,
        "stargazer_github_api_url": "http://127.0.0.1:9",
        "common_app_repo": f"file://{REPO_ROOT}",
        "common_app_version": _head_commit(),
        # Debian's python3 (readable by the service user), importing the CI venv's packages: the role's
        # pip step then verifies requirements.txt offline instead of downloading 1 GB.
        "common_python": "/usr/bin/python3",
        "common_pip_extra_args": "--no-index",
        "common_venv_extra_site_dirs": [_site_packages()],
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
        "nginx_disable_distro_service": False,
        "nginx_conf_dir": str(paths["nginx"] / "etc"),
        "nginx_run_dir": str(paths["nginx"] / "run"),
        "nginx_log_dir": str(paths["nginx"] / "log"),
        "nginx_temp_dir": str(paths["nginx"] / "tmp"),
        "celery_worker_concurrency": 1,
        "gunicorn_workers": 1,
        "githooks_repo_dir": str(paths["git"] / "stargazer-deploy.git"),
    }
    inventory = {"all": {"children": {"production": {"hosts": {"prod1": hostvars}}}}}
    path = inv / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path, paths, hostvars


def _converge(workdir: Path, inventory: Path, vault: tuple[Path, Path, dict[str, str]]) -> Result:
    vault_file, password, _ = vault
    return playbook(
        workdir, "-i", str(inventory), "--vault-password-file", str(password), "-e", f"@{vault_file}",
        "site.yml", "--limit", "production",
        # A first converge takes ~4 min on a 2-core machine at load 10+ (the RabbitMQ boot alone may take 2).
        timeout=900,
    )


@pytest.fixture(scope="module")
def converged(workdir: Path, ns_host: NamespaceHost, vault) -> Iterator[Converged]:
    for tool in ("supervisord", "supervisorctl", "nginx", "rabbitmq-server", "git"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    user = f"sgzt{secrets.token_hex(2)}"
    inventory, paths, hostvars = _write_inventory(workdir, ns_host, user)
    try:
        # Every process's command line is read while both converges run: what `ps` shows any local user.
        with CmdlineWatch(vault[2], markers=PASSWORD_CALLS) as watch:
            first = _converge(workdir, inventory, vault)
            assert first.returncode == 0, first.output[-6000:]
            second = _converge(workdir, inventory, vault)
            assert second.returncode == 0, second.output[-6000:]
        yield Converged(ns_host, paths, hostvars, vault[2], first, second, watch)
    finally:
        stop_supervisord(paths["supervisor"] / "supervisord.pid")
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)
        # The githooks role gave this throwaway deploy user a sudo rule for the load-check sandbox.
        Path(f"/etc/sudoers.d/stargazer-check-{user}").unlink(missing_ok=True)


def test_first_converge_builds_and_second_changes_nothing(converged: Converged) -> None:
    first = converged.first.recap()["prod1"]
    second = converged.second.recap()["prod1"]
    assert first["failed"] == 0 and first["unreachable"] == 0
    assert first["changed"] >= 15, first
    assert second["failed"] == 0 and second["unreachable"] == 0
    assert second["changed"] == 0, converged.second.output[-6000:]
    timing = f"first {converged.first.seconds:.1f} s, second (no change) {converged.second.seconds:.1f} s"
    print(f"converge: {timing}")


def test_every_program_runs_under_supervisor(converged: Converged) -> None:
    status = converged.supervisorctl("status")
    lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines() if line.strip()}
    for program in PROGRAMS:
        assert lines.get(program) == "RUNNING", status.stdout


def test_rendered_nginx_config_passes_nginx_t(converged: Converged) -> None:
    conf = converged.paths["nginx"] / "etc" / "nginx.conf"
    result = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert f"listen {HTTP_PORT};" in text
    assert "server 127.0.0.1:8000" in text
    assert "client_max_body_size 1m;" in text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(url: str, cafile: Path | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects; HTTPS verified against the host's own (self-signed) certificate."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if cafile is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(cafile))))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _https(converged: Converged, path: str) -> tuple[int, dict[str, str], bytes]:
    cert = converged.paths["nginx"] / "etc" / "tls" / "stargazer.crt"
    return _get(f"https://{converged.host.address}:{HTTPS_PORT}{path}", cert)


def test_healthz_answers_through_nginx_on_the_host_address(converged: Converged) -> None:
    deadline = time.monotonic() + 20
    while True:
        status, headers, body = _https(converged, "/healthz")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert status == 200, body[:500]
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Server") == "nginx"  # server_tokens off: no version
    assert headers.get("Strict-Transport-Security") == "max-age=31536000"


def test_plain_http_redirects_to_https(converged: Converged) -> None:
    status, headers, _ = _get(f"http://{converged.host.address}:{HTTP_PORT}/healthz?probe=1")
    assert status == 301
    assert headers["Location"] == f"https://{converged.host.address}:{HTTPS_PORT}/healthz?probe=1"


def test_self_signed_key_is_private_and_the_session_cookie_is_secure(converged: Converged) -> None:
    key = converged.paths["nginx"] / "etc" / "tls" / "stargazer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    status, headers, _ = _https(converged, "/")
    assert status == 200
    cookie = headers.get("Set-Cookie", "")
    assert cookie.startswith("session=") and "; Secure" in cookie and "; HttpOnly" in cookie, cookie


def test_unknown_api_route_gets_a_json_error_not_an_html_page(converged: Converged) -> None:
    status, _, body = _https(converged, "/api/v1/nope")
    assert status == 404
    assert "error" in json.loads(body)


BROKER_CHECK = """
import sys
from kombu import Connection
ok = Connection(sys.argv[1], connect_timeout=5)
ok.connect(); ok.release()
try:
    Connection(sys.argv[2], connect_timeout=5).connect()
except Exception as exc:
    print("guest refused:", type(exc).__name__)
else:
    sys.exit("guest could log in")
"""


def test_broker_takes_the_app_account_and_refuses_guest(converged: Converged) -> None:
    password = converged.secrets["vault_stargazer_broker_password"]
    good = f"amqp://stargazer:{password}@127.0.0.1:5672/stargazer"
    guest = "amqp://guest:guest@127.0.0.1:5672/"
    result = converged.host.exec(sys.executable, "-c", BROKER_CHECK, good, guest, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "guest refused" in result.stdout


def test_secrets_are_in_place_and_never_in_the_output(converged: Converged) -> None:
    deploy_secret = converged.paths["etc"] / "deploy_secret"
    assert deploy_secret.read_text().strip() == converged.secrets["vault_stargazer_deploy_secret"]
    assert stat.S_IMODE(deploy_secret.stat().st_mode) == 0o640
    for program in PROGRAMS:
        conf = converged.paths["supervisor"] / "conf.d" / f"{program}.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    env_file = (converged.paths["etc"] / "stargazer.env").read_text()
    assert f"STARGAZER_APP_DIR={converged.paths['app']}" in env_file
    output = converged.first.output + converged.second.output
    for name, value in converged.secrets.items():
        if value:
            assert value not in output, f"{name} leaked into ansible-playbook output"
            assert value not in env_file


def test_deploy_repository_has_its_hooks(converged: Converged) -> None:
    repo = converged.paths["git"] / "stargazer-deploy.git"
    for hook in ("pre-receive", "post-receive"):
        path = repo / "hooks" / hook
        assert path.exists() and os.access(path, os.X_OK), hook
    config = subprocess.run(
        ["git", "--git-dir", str(repo), "config", "--get", "stargazer.appdir"],
        capture_output=True, text=True, check=False,
    )
    assert config.stdout.strip() == str(converged.paths["app"])


def test_no_secret_is_ever_on_a_command_line(converged: Converged) -> None:
    """rabbitmqctl reads the broker password on stdin: a command line is readable by every local user."""
    watch = converged.watch
    assert set(PASSWORD_CALLS) <= watch.seen, f"the watch never saw {set(PASSWORD_CALLS) - watch.seen}"
    assert not watch.leaks, [(leak.what, leak.pid, leak.argv) for leak in watch.leaks[:5]]
