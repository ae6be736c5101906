"""The production tier as site.yml converged it for real, over SSH, on both rehearsed production hosts.

The session's rehearsed fleet (tests/rehearsed_fleet.py) converged every tier twice (the second run changing
nothing is tested in tests/rehearsal), deployed a model and drilled faults. Here each production host is
checked from the outside as a user and an operator would: nginx answers on the host's own address and passes
/healthz to gunicorn, RabbitMQ takes the application's account over AMQP and refuses guest, supervisor runs
every program, the secrets are where they belong with the right modes and never appear in Ansible's output
or on any command line.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rehearsed_fleet import PASSWORD_CALLS, RUN_TIMEOUT, RehearsedFleet

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(RUN_TIMEOUT + 900)]

PROGRAMS = ("stargazer-rabbitmq", "stargazer-celery", "stargazer-gunicorn", "stargazer-nginx")
PRODUCTION = ("p1", "p2")


@dataclass
class ProductionHost:
    """One production host of the rehearsed fleet: its address and the trees its roles wrote."""

    fleet: RehearsedFleet
    key: str

    @property
    def address(self) -> str:
        return self.fleet.address(self.key)

    def path(self, name: str) -> Path:
        tree = self.fleet.tree(self.key)
        return {"nginx": tree / "nginx" / "etc", "git": tree / "home" / "git"}.get(name, tree / name)

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.fleet.supervisorctl(self.key, *args)


@pytest.fixture(params=PRODUCTION)
def host(request: pytest.FixtureRequest, rehearsed_fleet: RehearsedFleet) -> ProductionHost:
    assert rehearsed_fleet.returncode == 0, rehearsed_fleet.output[-5000:]
    return ProductionHost(rehearsed_fleet, request.param)


def test_every_program_runs_under_supervisor(host: ProductionHost) -> None:
    status = host.supervisorctl("status")
    lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines() if line.strip()}
    for program in PROGRAMS:
        assert lines.get(program) == "RUNNING", status.stdout


def test_rendered_nginx_config_passes_nginx_t(host: ProductionHost) -> None:
    conf = host.path("nginx") / "nginx.conf"
    result = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "listen 80;" in text and "listen 443 ssl" in text
    # Balanced across every production host's gunicorn, over the fleet's private addresses.
    for other in PRODUCTION:
        assert f"server {host.fleet.address(other)}:8000" in text, text
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


def _https(host: ProductionHost, path: str) -> tuple[int, dict[str, str], bytes]:
    cert = host.path("nginx") / "tls" / "stargazer.crt"
    return _get(f"https://{host.address}{path}", cert)


def test_healthz_answers_through_nginx_on_the_host_address(host: ProductionHost) -> None:
    status, headers, body = _https(host, "/healthz")  # the rehearsal's status.yml found it up already
    assert status == 200, body[:500]
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Server") == "nginx"  # server_tokens off: no version
    assert headers.get("Strict-Transport-Security") == "max-age=31536000"


def test_plain_http_redirects_to_https(host: ProductionHost) -> None:
    status, headers, _ = _get(f"http://{host.address}/healthz?probe=1")
    assert status == 301
    assert headers["Location"] == f"https://{host.address}/healthz?probe=1"


def test_self_signed_key_is_private_and_the_session_cookie_is_secure(host: ProductionHost) -> None:
    key = host.path("nginx") / "tls" / "stargazer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    status, headers, _ = _https(host, "/")
    assert status == 200
    cookie = headers.get("Set-Cookie", "")
    assert cookie.startswith("session=") and "; Secure" in cookie and "; HttpOnly" in cookie, cookie


def test_unknown_api_route_gets_a_json_error_not_an_html_page(host: ProductionHost) -> None:
    status, _, body = _https(host, "/api/v1/nope")
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


def test_broker_takes_the_app_account_and_refuses_guest(host: ProductionHost) -> None:
    password = host.fleet.secrets["vault_stargazer_broker_password"]
    good = f"amqp://stargazer:{password}@127.0.0.1:5672/stargazer"
    guest = "amqp://guest:guest@127.0.0.1:5672/"
    result = host.fleet.exec(host.key, sys.executable, "-c", BROKER_CHECK, good, guest)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "guest refused" in result.stdout


def test_secrets_are_in_place_and_never_in_the_output(host: ProductionHost) -> None:
    # Production verifies with the public key only; the signing key is on no production host.
    public = host.path("etc-public") / "deploy_public_key"
    assert public.read_text().strip() == host.fleet.public["vault_stargazer_deploy_public_key"]
    signing_key = host.fleet.secrets["vault_stargazer_deploy_signing_key"]
    for path in host.fleet.tree(host.key).rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
            assert signing_key.encode() not in path.read_bytes(), f"the signing key is in {path}"
    for program in PROGRAMS:
        conf = host.path("supervisor") / "conf.d" / f"{program}.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    env_file = (host.path("etc") / "stargazer.env").read_text()
    assert f"STARGAZER_APP_DIR={host.path('app')}" in env_file
    for name, value in host.fleet.secrets.items():
        if value:
            assert value not in env_file, f"{name} is in the world-readable stargazer.env"


def test_no_secret_is_in_any_stage_log(rehearsed_fleet: RehearsedFleet) -> None:
    """Every converge, the pipeline, the drills and status.yml: nothing the vault holds is ever printed."""
    assert {"converge-1", "converge-2", "deploy", "status-up"} <= set(rehearsed_fleet.logs)
    for stage, text in rehearsed_fleet.logs.items():
        for name, value in rehearsed_fleet.secrets.items():
            if value:
                assert value not in text, f"{name} leaked into the {stage} log"


def test_deploy_repository_has_its_hooks(host: ProductionHost) -> None:
    repo = host.path("git") / "stargazer-deploy.git"
    for hook in ("pre-receive", "post-receive"):
        path = repo / "hooks" / hook
        assert path.exists() and os.access(path, os.X_OK), hook
    config = subprocess.run(
        ["git", "--git-dir", str(repo), "config", "--get", "stargazer.appdir"],
        capture_output=True, text=True, check=False,
    )
    assert config.stdout.strip() == str(host.path("app"))


def test_no_secret_is_ever_on_a_command_line(rehearsed_fleet: RehearsedFleet) -> None:
    """rabbitmqctl reads the broker password on stdin: a command line is readable by every local user."""
    watch = rehearsed_fleet.watch
    assert set(PASSWORD_CALLS) <= watch.seen, f"the watch never saw {set(PASSWORD_CALLS) - watch.seen}"
    leaks = watch.leaks_of(rehearsed_fleet.secrets)
    assert not leaks, [(leak.what, leak.pid, leak.argv) for leak in leaks[:5]]
