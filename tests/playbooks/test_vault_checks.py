"""The secret preflight of every tier: a missing, short or placeholder vault value stops the play.

Each host below misses or spoils one secret its tier needs (or holds vault.yml.example's values as they
come). The real tier playbook must stop that host on its first task, before anything on the host is touched
(`changed=0`), with one line per bad variable that names it and never shows its value. Local connection:
nothing here reaches a host, and each host's paths point into the test's temp directory.
"""

from __future__ import annotations

import re
import secrets

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, Result, playbook
from tests.support import REPO_ROOT

INVENTORY = REPO_ROOT / "inventory"
EXAMPLE = yaml.safe_load((INVENTORY / "group_vars" / "all" / "vault.yml.example").read_text())
TIER_SECRETS = {
    "production": (
        "vault_stargazer_deploy_public_key", "vault_stargazer_broker_password", "vault_stargazer_secret_key",
    ),
    "development": ("vault_stargazer_deploy_signing_key", "vault_ray_auth_token"),
    "ray_workers": ("vault_ray_auth_token",),
}
SHORT = "is missing or shorter than 32 characters"
PLACEHOLDER = "still holds the placeholder CHANGE-ME of vault.yml.example"


def _good(tier: str) -> dict[str, str]:
    return {name: secrets.token_hex(32) for name in TIER_SECRETS[tier]}


def _case(tier: str, **changes: str | None) -> tuple[str, dict[str, str]]:
    """The tier's secrets, all good but `changes` (None: the variable is left out)."""
    values = {**_good(tier), **changes}
    return tier, {name: value for name, value in values.items() if value is not None}


# host: (tier, its vault values, {variable: expected message}) — only the variables listed may fail.
CASES: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "prod-no-deploy-public-key": (
        *_case("production", vault_stargazer_deploy_public_key=None),
        {"vault_stargazer_deploy_public_key": SHORT},
    ),
    "prod-31-char-broker-password": (
        *_case("production", vault_stargazer_broker_password=secrets.token_hex(15) + "f"),
        {"vault_stargazer_broker_password": SHORT},
    ),
    "prod-no-flask-secret-key": (
        *_case("production", vault_stargazer_secret_key=None),
        {"vault_stargazer_secret_key": SHORT},
    ),
    "prod-long-placeholder": (
        *_case("production", vault_stargazer_secret_key="CHANGE-ME-" + secrets.token_hex(24)),
        {"vault_stargazer_secret_key": PLACEHOLDER},
    ),
    "prod-example-as-is": (
        "production",
        {name: EXAMPLE[name] for name in TIER_SECRETS["production"]},
        dict.fromkeys(TIER_SECRETS["production"], PLACEHOLDER),
    ),
    "dev-no-ray-token": (
        *_case("development", vault_ray_auth_token=None),
        {"vault_ray_auth_token": SHORT},
    ),
    "dev-lowercase-placeholder": (
        *_case("development", vault_stargazer_deploy_signing_key=secrets.token_hex(20) + "-change-me"),
        {"vault_stargazer_deploy_signing_key": PLACEHOLDER},
    ),
    "worker-31-char-ray-token": (
        *_case("ray_workers", vault_ray_auth_token=secrets.token_hex(15) + "a"),
        {"vault_ray_auth_token": SHORT},
    ),
    "worker-example-as-is": (
        "ray_workers",
        {"vault_ray_auth_token": EXAMPLE["vault_ray_auth_token"]},
        {"vault_ray_auth_token": PLACEHOLDER},
    ),
}
FAILED_ITEM = re.compile(
    r"^failed: \[(?P<host>[^\]]+)\] \(item=(?P<var>\w+)\) => .*?^\s+msg: (?P<msg>.*?)(?=^\S|\Z)", re.M | re.S
)


@pytest.fixture(scope="module")
def tier_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """One run per tier playbook, every case host of that tier in it (each fails on its own)."""
    workdir = tmp_path_factory.mktemp("vault-checks")
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(INVENTORY / "group_vars")
    groups: dict[str, dict] = {tier: {"hosts": {}} for tier in (*TIER_SECRETS, "orchestration")}
    for host, (tier, values, _) in CASES.items():
        groups[tier]["hosts"][host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(BIN / "python"),
            "stargazer_install_packages": False,
            "stargazer_manage_user": False,
            "stargazer_app_dir": str(workdir / host / "app"),
            "stargazer_config_dir": str(workdir / host / "etc"),
            **values,
        }
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": groups}}))
    return {tier: playbook(workdir, "-i", str(inv / "hosts.yml"), f"{tier}.yml") for tier in TIER_SECRETS}


def _failures(run: Result, host: str) -> dict[str, str]:
    """{variable: its one-line message} (the YAML callback wraps long lines: joined again here)."""
    found = {m["var"]: " ".join(m["msg"].split()).strip("'\"") for m in FAILED_ITEM.finditer(run.output)
             if m["host"] == host}
    return found


@pytest.mark.parametrize("host", sorted(CASES))
def test_a_bad_secret_stops_the_tier_on_its_first_task_naming_only_the_variable(tier_runs, host: str) -> None:
    tier, values, expected = CASES[host]
    run = tier_runs[tier]
    assert run.returncode != 0
    recap = run.recap()[host]
    assert recap["failed"] == 1 and recap["changed"] == 0, recap
    failures = _failures(run, host)
    assert set(failures) == set(expected), run.output[-4000:]
    for name, message in expected.items():
        assert failures[name].startswith(f"{name} {message}: set it in "), failures[name]
        assert "vault.yml.example" in failures[name]
    for name, value in values.items():
        assert value not in run.output, f"the value of {name} is in the output"


def test_every_required_secret_is_in_the_example_file() -> None:
    """A secret a tier checks but vault.yml.example does not list could never be filled in from it."""
    for tier, names in TIER_SECRETS.items():
        plays = yaml.safe_load((REPO_ROOT / "playbooks" / f"{tier}.yml").read_text())
        required = set(plays[0]["vars"]["stargazer_required_secrets"])
        assert set(names) <= required, tier
        assert required <= set(EXAMPLE), f"{tier}: add {sorted(required - set(EXAMPLE))} to the example"
