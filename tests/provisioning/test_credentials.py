"""start_instances.py takes credentials only through clouds.yaml / OS_CLOUD, and the example clouds.yaml
holds no real secret.

The classic `OS_USERNAME` / `OS_PASSWORD` / `OS_AUTH_URL` environment (as an `openrc` file sets it) is never
a source of credentials, neither beside a named cloud nor instead of one; clouds.yaml.example is a usable,
placeholder-only template, and git keeps real files out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from openstack import config as os_config

import start_instances
from tests.provisioning.conftest import Env
from tests.support import REPO_ROOT, require_executable

EXAMPLE = REPO_ROOT / "clouds.yaml.example"
OPENRC = {
    "OS_AUTH_URL": "https://keystone.unreachable.test/v3",
    "OS_USERNAME": "mallory",
    "OS_PASSWORD": "openrc-password-never-used",
    "OS_PROJECT_NAME": "elsewhere",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
    "OS_REGION_NAME": "RegionOne",
}


def test_openrc_variables_are_never_credentials(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in OPENRC.items():
        monkeypatch.setenv(key, value)
    result = env.run()  # --cloud fake: the clouds.yaml entry, whatever the environment says
    assert result.exit_code == 0, result.output
    tokens = [c for c in env.fake.calls if c.service == "identity" and c.path == "/v3/auth/tokens"]
    assert tokens
    for call in tokens:
        user = call.body["auth"]["identity"]["password"]["user"]
        assert (user["name"], user["password"]) == (env.fake.username, env.fake.password)
    assert OPENRC["OS_PASSWORD"] not in result.output

    # and without a cloud named, the openrc environment is not a fallback: one line, exit 2, no request
    calls = len(env.fake.calls)
    bare = CliRunner().invoke(start_instances.main, ["--fleet", str(env.fleet_path)], env={"OS_CLOUD": None})
    assert bare.exit_code == 2
    assert bare.stderr.strip().startswith("error: no cloud named")
    assert len(env.fake.calls) == calls


def test_example_clouds_yaml_is_usable_and_holds_only_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    clouds = yaml.safe_load(text)["clouds"]
    assert set(clouds) == {"stargazer", "stargazer-password"}
    for name, cloud in clouds.items():
        auth = cloud["auth"]
        assert "password" not in auth, name  # the password variant keeps it in secure.yaml
        for key in ("application_credential_secret", "application_credential_id", "username"):
            if key in auth:
                assert auth[key].startswith("<") and auth[key].endswith(">"), (name, key)
    # openstacksdk's own loader accepts the file as it is (only the placeholders need filling in)
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    loader = os_config.OpenStackConfig(config_files=[str(EXAMPLE)], secure_files=[], vendor_files=[])
    region = loader.get_one(cloud="stargazer")
    assert region.config["auth_type"] == "v3applicationcredential"
    assert region.config["auth"]["auth_url"].startswith("https://")


def test_real_credential_files_and_the_generated_inventory_stay_out_of_git() -> None:
    git = require_executable("git")
    for path in ("clouds.yaml", "inventory/hosts.yml"):
        ignored = subprocess.run(
            [git, "check-ignore", "--no-index", "-q", path], cwd=REPO_ROOT, check=False, timeout=30
        )
        assert ignored.returncode == 0, f"{path} is not ignored by git"
        tracked = subprocess.run(
            [git, "ls-files", "--error-unmatch", path], cwd=REPO_ROOT, capture_output=True, check=False
        )
        assert tracked.returncode != 0, f"{path} is committed"
