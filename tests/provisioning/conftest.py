"""Fixtures: a fresh stateful fake cloud per test, its clouds.yaml, a fleet file, and the CLI runner.

The CLI runs in-process (click's CliRunner) because requests-mock patches this process's transport; the
code path under test is the real one: start_instances.main -> provisioning -> openstacksdk -> keystoneauth ->
requests -> fake cloud.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
import yaml
from click.testing import CliRunner, Result

import start_instances
from tests.provisioning.fake_cloud import FakeCloud
from tests.support import REPO_ROOT, require_executable

PUBLIC_CIDR = "130.238.7.10/32"  # a global address: Ansible reaches floating IPs from outside the cloud


@dataclass
class Env:
    tmp: Path
    fake: FakeCloud
    fleet_path: Path
    inventory: Path
    public_key: str

    def write_fleet(self, **changes: Any) -> Path:
        """(Re)write the fleet file; `roles` entries are merged per role."""
        fleet: dict[str, Any] = {
            "name": "sg",
            "image": "Ubuntu 24.04",
            "network": "stargazer-net",
            "external_network": "public",
            "keypair": {"name": "sg-key", "public_key_file": "id_test.pub"},
            "ssh_cidr": PUBLIC_CIDR,
            "roles": {
                "orchestration": {"count": 0},
                "development": {"count": 1, "flavor": "m1.large", "floating_ip": True},
                "ray_workers": {"count": 2, "flavor": "m1.medium"},
                "production": {"count": 1, "flavor": "m1.medium", "floating_ip": True},
            },
        }
        roles = changes.pop("roles", {})
        fleet.update(changes)
        for role, spec in roles.items():
            fleet["roles"][role] = {**fleet["roles"][role], **spec}
        self.fleet_path.write_text(yaml.safe_dump(fleet), encoding="utf-8")
        return self.fleet_path

    def run(self, *args: str, cloud: str = "fake") -> Result:
        argv = [
            "--fleet",
            str(self.fleet_path),
            "--cloud",
            cloud,
            "--inventory",
            str(self.inventory),
            "--poll-interval",
            "0.001",
            "--timeout",
            "5",
            *args,
        ]
        result = CliRunner().invoke(start_instances.main, argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def inventory_data(self) -> dict[str, Any]:
        return yaml.safe_load(self.inventory.read_text(encoding="utf-8"))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    fake = FakeCloud()
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        fake.clouds_yaml("fake")
        + fake.clouds_yaml("wrongpw", password="not-the-password").removeprefix("clouds:\n")
        + fake.clouds_yaml("unreachable")
        .removeprefix("clouds:\n")
        .replace("https://identity.cloud.test", "https://keystone.unreachable.test"),
        encoding="utf-8",
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("OS_CLIENT_SECURE_FILE", str(tmp_path / "no-secure.yaml"))
    monkeypatch.delenv("OS_CLOUD", raising=False)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsC1oPmVb4Qx0QHhGQ0qMLdnEHxfG1bq3bF0g6nD0Q1 test@stargazer"
    (tmp_path / "id_test.pub").write_text(key + "\n", encoding="utf-8")
    e = Env(tmp_path, fake, tmp_path / "fleet.yml", tmp_path / "inventory" / "hosts.yml", key)
    e.write_fleet()
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.register_uri(  # what requests raises when nothing listens at the auth_url
            requests_mock.ANY,
            re.compile(r"https://keystone\.unreachable\.test/.*"),
            exc=requests.exceptions.ConnectionError(
                "Failed to establish a new connection: [Errno 111] refused"
            ),
        )
        yield e
    assert fake.unhandled == [], f"requests the fake cloud does not know: {fake.unhandled}"


@pytest.fixture
def ansible_inventory() -> Callable[..., dict[str, Any]]:
    """Parse an inventory with the real `ansible-inventory` (what ansible-playbook will see)."""
    exe = require_executable("ansible-inventory", str(REPO_ROOT / ".venv" / "bin" / "ansible-inventory"))

    def parse(*paths: Path) -> dict[str, Any]:
        sources = [arg for path in paths for arg in ("-i", str(path))]
        out = subprocess.run(
            [exe, *sources, "--list"], capture_output=True, text=True, check=True, timeout=60
        )
        return yaml.safe_load(out.stdout)

    return parse
