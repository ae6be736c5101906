"""nginx in front of the fleet: HTTPS with a redirect and HSTS, and balancing across every production host.

The upstream list is rendered by the real ansible-playbook from the roles' own defaults and the project's one
template (nginx/nginx.conf.j2) for a two-host inventory; then the real nginx, rendered from the same template
with TLS on, balances across two real gunicorn processes on loopback and keeps answering when one is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from model_serving.process_stack.services import Nginx, self_signed_certificate
from tests.playbooks.ansible_run import PLAYBOOKS, playbook
from tests.support import REPO_ROOT, free_port, require_executable, wait_until

ROLES = PLAYBOOKS / "roles"
DEFAULTS = [ROLES / role / "defaults" / "main.yml" for role in ("stargazer", "gunicorn", "nginx")]


def _render_playbook(workdir: Path) -> Path:
    """Renders the nginx config and the gunicorn addresses of every host with the roles' own defaults."""
    plays = [{
        "name": "Render what the nginx and gunicorn roles would write",
        "hosts": "all",
        "gather_facts": False,
        "vars_files": [str(path) for path in DEFAULTS],
        "tasks": [
            {"name": "Render nginx.conf", "ansible.builtin.template": {
                "src": str(REPO_ROOT / "nginx" / "nginx.conf.j2"),
                "dest": f"{workdir}/{{{{ inventory_hostname }}}}.nginx.conf", "mode": "0644"}},
            {"name": "Write the gunicorn addresses", "ansible.builtin.copy": {
                "content": "{{ {'bind': gunicorn_bind_address ~ ':' ~ gunicorn_port,"
                           " 'forwarded': gunicorn_forwarded_allow_ips} | to_json }}",
                "dest": f"{workdir}/{{{{ inventory_hostname }}}}.gunicorn.json", "mode": "0644"}},
        ],
    }]
    path = workdir / "render.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def _local(**hostvars: object) -> dict[str, object]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **hostvars}


def _upstreams(conf: str) -> list[str]:
    block = conf.split("upstream stargazer_app {", 1)[1].split("}", 1)[0]
    return [line.split()[1] for line in block.splitlines() if line.strip().startswith("server ")]


def test_each_production_host_balances_across_every_production_hosts_private_ip(tmp_path: Path) -> None:
    inventory = {"all": {"children": {
        "production": {"hosts": {
            "prod-1": _local(private_ip="10.9.0.31", floating_ip="172.24.4.31", ansible_host="172.24.4.31"),
            "prod-2": _local(private_ip="10.9.0.32", floating_ip=None, ansible_host="10.9.0.32"),
        }, "vars": {"gunicorn_port": 8000}},
        "development": {"hosts": {"dev-1": _local(private_ip="10.9.0.11")}},
    }}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    result = playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), "--limit", "production",
                      str(_render_playbook(tmp_path)))
    assert result.returncode == 0, result.output[-4000:]
    for host, address in (("prod-1", "10.9.0.31"), ("prod-2", "10.9.0.32")):
        conf = (tmp_path / f"{host}.nginx.conf").read_text()
        assert _upstreams(conf) == ["10.9.0.31:8000", "10.9.0.32:8000"], host
        assert "listen 443 ssl;" in conf and "listen 80;" in conf
        gunicorn = yaml.safe_load((tmp_path / f"{host}.gunicorn.json").read_text())
        # gunicorn listens on the private address only (the security group opens it inside the fleet).
        assert gunicorn["bind"] == f"{address}:8000"
        assert gunicorn["forwarded"] == "127.0.0.1,10.9.0.31,10.9.0.32"


def test_an_inventory_without_private_ip_keeps_gunicorn_on_loopback(tmp_path: Path) -> None:
    inventory = {"all": {"children": {"production": {"hosts": {"localhost": _local()}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    result = playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), str(_render_playbook(tmp_path)))
    assert result.returncode == 0, result.output[-4000:]
    assert _upstreams((tmp_path / "localhost.nginx.conf").read_text()) == ["127.0.0.1:8000"]
    assert yaml.safe_load((tmp_path / "localhost.gunicorn.json").read_text())["bind"] == "127.0.0.1:8000"


# --- the real nginx, over HTTPS, in front of two real gunicorn processes ------------------------------------

WSGI_APP = '''
import os

def app(environ, start_response):
    body = ("%s %s %s\\n" % (os.environ["UPSTREAM_NAME"], environ["REQUEST_METHOD"],
                              environ.get("HTTP_X_FORWARDED_PROTO", ""))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


class Upstream:
    """One real gunicorn (sync worker) answering with its name; its own session, so it can be killed whole."""

    def __init__(self, appdir: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        env = dict(os.environ, UPSTREAM_NAME=name)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
             "--chdir", str(appdir), "upstream_app:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self._answers, timeout, f"gunicorn {self.name} to answer")

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"gunicorn {self.name} exited"
        try:
            return requests.get(f"http://{self.address}/", timeout=2).text.startswith(self.name)
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nginx, list[Upstream], Path, int]]:
    require_executable("nginx", "/usr/sbin/nginx")
    require_executable("openssl")
    workdir = tmp_path_factory.mktemp("balanced")
    (workdir / "upstream_app.py").write_text(WSGI_APP)
    upstreams = [Upstream(workdir, "alpha"), Upstream(workdir, "beta")]
    cert, key = self_signed_certificate(workdir)
    https_port = free_port()
    nginx = Nginx(workdir / "nginx", upstreams=[u.address for u in upstreams], variables={
        "nginx_https_listen": f"127.0.0.1:{https_port}",
        "nginx_tls_certificate": str(cert),
        "nginx_tls_certificate_key": str(key),
    })
    nginx.die_with_parent = True
    try:
        for upstream in upstreams:
            upstream.wait_ready()
        nginx.start().wait_ready(30)
        yield nginx, upstreams, cert, https_port
    finally:
        nginx.stop()
        for upstream in upstreams:
            upstream.kill()


def test_plain_http_redirects_to_https_with_the_path_and_query(balanced) -> None:
    nginx, _, _, https_port = balanced
    answer = requests.get(f"{nginx.url}/api/v1/predict?x=1", allow_redirects=False, timeout=10)
    assert answer.status_code == 301
    assert answer.headers["Location"] == f"https://127.0.0.1:{https_port}/api/v1/predict?x=1"
    assert "Strict-Transport-Security" not in answer.headers  # HSTS means something only over HTTPS


def test_https_answers_with_hsts_and_tells_the_app_it_was_https(balanced) -> None:
    _, _, cert, https_port = balanced
    answer = requests.get(f"https://127.0.0.1:{https_port}/", verify=str(cert), timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert answer.text.split()[2] == "https"


def test_requests_are_balanced_and_one_upstream_down_still_answers(balanced) -> None:
    _, upstreams, cert, https_port = balanced
    url = f"https://127.0.0.1:{https_port}/"
    with requests.Session() as session:
        before = Counter(session.get(url, verify=str(cert), timeout=10).text.split()[0] for _ in range(20))
        assert set(before) == {"alpha", "beta"}, before
        upstreams[0].kill()
        after = []
        for index in range(30):
            method = "GET" if index % 2 else "POST"
            answer = session.request(method, url, data=b"x", verify=str(cert), timeout=10)
            assert answer.status_code == 200, answer.text
            after.append(answer.text.split()[0])
    assert set(after) == {"beta"}


# --- the template's two renderers agree ---------------------------------------------------------------------

#: Where a production host and a local stack differ by design (the worker user, ports, certificate paths, and
#: which gunicorns); every other value of services.NGINX_DEFAULTS must equal the nginx role's default.
SITE_SPECIFIC = {"nginx_user", "nginx_listen", "nginx_https_listen", "nginx_tls_certificate",
                 "nginx_tls_certificate_key", "nginx_upstreams"}


def test_local_stack_defaults_mirror_the_nginx_role_defaults() -> None:
    import jinja2

    from model_serving.process_stack import services
    from model_serving.process_stack.services import NGINX_DEFAULTS

    role = yaml.safe_load((ROLES / "nginx" / "defaults" / "main.yml").read_text())
    assert set(NGINX_DEFAULTS) <= set(role), "services.NGINX_DEFAULTS names a variable the role does not have"
    assert set(services.NGINX_LOCAL_VALUES) == SITE_SPECIFIC, "a local difference that is not site-specific"
    unset = services.nginx_template_variables() - set(NGINX_DEFAULTS) - set(services.NGINX_PER_STACK)
    assert not unset, f"the template reads {sorted(unset)}, which a local stack never sets"
    # A default that names another keeps that default's type (a list stays a list for the template's loops).
    assert NGINX_DEFAULTS["nginx_readyz_detail_allow"] == role["nginx_metrics_allow"]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - not HTML
    for name in sorted(set(NGINX_DEFAULTS) - SITE_SPECIFIC):
        value = role[name]
        if isinstance(value, str) and "{{" in value:  # a default that names another default
            value = env.from_string(value).render(**role)
        local = NGINX_DEFAULTS[name]
        assert str(value) == str(local), f"{name}: role {value!r}, services.NGINX_DEFAULTS {local!r}"
