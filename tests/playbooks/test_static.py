"""The Ansible tree as code: syntax, lint, role conventions, and how the vault is (not) wired."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, PLAYBOOKS, Result, ansible_env, playbook
from tests.support import REPO_ROOT

ROLES = PLAYBOOKS / "roles"
INVENTORY = REPO_ROOT / "inventory"
TIERS = ("orchestration", "development", "ray_workers", "production")


def test_site_passes_syntax_check(tmp_path: Path) -> None:
    result = playbook(tmp_path, "--syntax-check", "-i", str(INVENTORY / "hosts.example.yml"), "site.yml")
    assert result.returncode == 0, result.output


def test_site_imports_every_tier() -> None:
    site = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    assert [entry["ansible.builtin.import_playbook"] for entry in site] == [f"{t}.yml" for t in TIERS]
    for tier in TIERS:
        plays = yaml.safe_load((PLAYBOOKS / f"{tier}.yml").read_text())
        assert plays[0]["hosts"] == tier


def test_ansible_lint_production_profile_passes() -> None:
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--nocolor", "--offline"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_yamllint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "yamllint"), "-s", "playbooks", "inventory", ".yamllint", ".ansible-lint"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if (p / "defaults").is_dir()))
def test_every_role_default_is_prefixed_and_commented(role: str) -> None:
    """geerlingguy style: each tunable is named <role>_..., with a comment line right above it."""
    lines = (ROLES / role / "defaults" / "main.yml").read_text().splitlines()
    keys = [(i, line.split(":", 1)[0]) for i, line in enumerate(lines) if re.match(r"^[a-z_]+:", line)]
    assert keys, f"{role} has no defaults"
    for index, key in keys:
        assert key.startswith(f"{role}_"), f"{role}: {key} is not prefixed with {role}_"
        assert lines[index - 1].startswith("#"), f"{role}: {key} has no comment above it"


def test_nginx_role_defines_every_variable_of_the_shared_template() -> None:
    """nginx/nginx.conf.j2 is shared with `make serve`: a variable added there must get a role default."""
    import jinja2
    import jinja2.meta

    source = (REPO_ROOT / "nginx" / "nginx.conf.j2").read_text()
    # Parsed only, never rendered into HTML: autoescape is irrelevant here.
    used = jinja2.meta.find_undeclared_variables(jinja2.Environment(autoescape=False).parse(source))  # noqa: S701
    defaults = yaml.safe_load((ROLES / "nginx" / "defaults" / "main.yml").read_text())
    assert not sorted(used - set(defaults)), "add these to playbooks/roles/nginx/defaults/main.yml"


def test_vault_example_is_never_loaded_and_no_plain_secret_is_committed(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(INVENTORY / "hosts.example.yml"),
         "--host", "stargazer-production-1"],
        cwd=PLAYBOOKS, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120, check=True,
    )
    hostvars = yaml.safe_load(result.stdout)
    assert not [k for k in hostvars if k.startswith("vault_")], "vault.yml.example was loaded as variables"
    assert hostvars["stargazer_http_port"] == 80  # group_vars/production.yml is
    tracked = subprocess.run(
        ["git", "ls-files", "inventory"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        if Path(path).name in {"vault.yml", "vault.yaml"}:
            assert (REPO_ROOT / path).read_text().startswith("$ANSIBLE_VAULT"), f"{path} is not encrypted"


def test_local_inventory_keeps_everything_under_var(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(INVENTORY / "local.yml"), "--list", "--export"],
        cwd=PLAYBOOKS, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120, check=True,
    )
    hostvars = yaml.safe_load(result.stdout)["_meta"]["hostvars"]["localhost"]
    assert hostvars["local_root"] == "{{ inventory_dir | dirname }}/var/ansible-local"
    for key, value in hostvars.items():
        if key.endswith(("_dir", "_file", "_socket", "_pidfile", "_home")) and isinstance(value, str):
            assert value.startswith("{{ local_root }}"), f"{key}={value} escapes var/ansible-local"


# Each host misses one secret its tier needs: the play must stop on the first task, with one clear line,
# before anything on the host is touched (changed=0). Local connection: nothing here reaches a host.
MISSING_SECRETS = {
    "prod-no-deploy-secret": (
        "production",
        {"vault_stargazer_broker_password": "b" * 32},
        "vault_stargazer_deploy_secret is missing or shorter than 32 characters",
    ),
    "prod-short-broker-password": (
        "production",
        {"vault_stargazer_deploy_secret": "d" * 64, "vault_stargazer_broker_password": "short"},
        "vault_stargazer_broker_password is missing or shorter than 16 characters",
    ),
    "dev-no-ray-token": (
        "development",
        {"vault_stargazer_deploy_secret": "d" * 64},
        "vault_ray_auth_token is missing or shorter than 32 characters",
    ),
    "worker-short-ray-token": (
        "ray_workers",
        {"vault_ray_auth_token": "t" * 31},
        "vault_ray_auth_token is missing or shorter than 32 characters",
    ),
}


@pytest.fixture(scope="module")
def missing_secret_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """One run per tier playbook (Ansible ends a run once every host of a play has failed)."""
    workdir = tmp_path_factory.mktemp("missing-secrets")
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(INVENTORY / "group_vars")
    groups: dict[str, dict] = {tier: {"hosts": {}} for tier in TIERS}
    for host, (tier, secrets, _) in MISSING_SECRETS.items():
        groups[tier]["hosts"][host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(BIN / "python"),
            "stargazer_install_packages": False,
            "stargazer_manage_user": False,
            "stargazer_app_dir": str(workdir / host / "app"),
            "stargazer_config_dir": str(workdir / host / "etc"),
            **secrets,
        }
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": groups}}))
    tiers = sorted({tier for tier, _, _ in MISSING_SECRETS.values()})
    return {tier: playbook(workdir, "-i", str(inv / "hosts.yml"), f"{tier}.yml") for tier in tiers}


@pytest.mark.parametrize("host", sorted(MISSING_SECRETS))
def test_a_missing_secret_stops_the_tier_with_one_clear_line(missing_secret_runs, host: str) -> None:
    tier, _, message = MISSING_SECRETS[host]
    run = missing_secret_runs[tier]
    assert run.returncode != 0
    recap = run.recap()[host]
    assert recap["failed"] == 1 and recap["changed"] == 0, recap
    failures = re.findall(rf"^failed: \[{re.escape(host)}\] .*?^    msg: (.*?)$", run.output, re.M | re.S)
    assert failures, run.output[-3000:]
    assert message in failures[0] and "vault.yml.example" in run.output
