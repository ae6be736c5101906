"""The nginx role's certificate: self-signed on the host by default (once), the operator's when both paths are
given, and one clear line when only one is. The role's own tls.yml and defaults, run by ansible-playbook on
this machine (local connection) into a temporary directory."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_serving.process_stack.services import self_signed_certificate
from tests.playbooks.ansible_run import PLAYBOOKS, Result, playbook
from tests.support import require_executable

TLS_TASKS = PLAYBOOKS / "roles" / "nginx" / "tasks" / "tls.yml"
DEFAULTS = [PLAYBOOKS / "roles" / role / "defaults" / "main.yml" for role in ("stargazer", "nginx")]


def _run(workdir: Path, **overrides: object) -> Result:
    """The role's defaults come in as vars_files, so what a test sets goes in as extra vars (they win)."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "ansible_host": "203.0.113.7", "private_ip": "10.9.0.31"}
    (workdir / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"production": {"hosts": {"prod-1": host}}}}}
    ))
    extra = {"nginx_conf_dir": str(workdir / "etc"), **overrides}
    (workdir / "overrides.yml").write_text(yaml.safe_dump(extra))
    plays = [{
        "name": "The nginx role's TLS tasks",
        "hosts": "production",
        "gather_facts": False,
        "vars_files": [str(path) for path in DEFAULTS],
        "tasks": [{"name": "TLS", "ansible.builtin.import_tasks": str(TLS_TASKS)}],
        "handlers": [{"name": "Reload nginx", "ansible.builtin.debug": {"msg": "reload"}}],
    }]
    (workdir / "tls.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    return playbook(workdir, "-i", str(workdir / "hosts.yml"), "-e", f"@{workdir / 'overrides.yml'}",
                    str(workdir / "tls.yml"))


def _x509(cert: Path) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(autouse=True)
def _openssl() -> None:
    require_executable("openssl")


def test_a_self_signed_certificate_is_made_once_for_the_hosts_names(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first.returncode == 0, first.output[-3000:]
    cert, key = tmp_path / "etc" / "tls" / "stargazer.crt", tmp_path / "etc" / "tls" / "stargazer.key"
    text = _x509(cert)
    for name in ("DNS:prod-1", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:203.0.113.7",
                 "IP Address:10.9.0.31"):
        assert name in text, name
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc" / "tls").stat().st_mode) == 0o700
    before = cert.read_bytes()
    second = _run(tmp_path)
    assert second.returncode == 0 and second.recap()["prod-1"]["changed"] == 0, second.output[-3000:]
    assert cert.read_bytes() == before  # kept: a client that trusted it keeps working


def test_the_operators_certificate_and_key_are_installed(tmp_path: Path) -> None:
    own_cert, own_key = self_signed_certificate(tmp_path / "operator")
    result = _run(tmp_path, nginx_tls_operator_certificate=str(own_cert),
                  nginx_tls_operator_certificate_key=str(own_key))
    assert result.returncode == 0, result.output[-3000:]
    tls = tmp_path / "etc" / "tls"
    assert (tls / "stargazer.crt").read_bytes() == own_cert.read_bytes()
    assert (tls / "stargazer.key").read_bytes() == own_key.read_bytes()
    assert stat.S_IMODE((tls / "stargazer.key").stat().st_mode) == 0o600
    assert "Generate a self-signed certificate" in result.output
    assert re.search(r"Generate a self-signed certificate on the host\] \*+\nskipping", result.output)
    assert own_key.read_text() not in result.output  # the key is never shown


def test_a_certificate_without_its_key_is_one_clear_line(tmp_path: Path) -> None:
    own_cert, _ = self_signed_certificate(tmp_path / "operator")
    result = _run(tmp_path, nginx_tls_operator_certificate=str(own_cert))
    assert result.returncode != 0
    assert ("set both nginx_tls_operator_certificate and nginx_tls_operator_certificate_key, or neither "
            "(then a self-signed certificate is generated on the host)") in result.output
    assert not (tmp_path / "etc").exists()
