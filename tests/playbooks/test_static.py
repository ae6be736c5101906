"""The Ansible tree as code: syntax, lint, role conventions, and how the vault is (not) wired."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, PLAYBOOKS, ansible_env, playbook
from tests.support import REPO_ROOT

ROLES = PLAYBOOKS / "roles"
INVENTORY = REPO_ROOT / "inventory"
TIERS = ("orchestration", "development", "ray_workers", "production")


def test_site_passes_syntax_check(tmp_path: Path) -> None:
    result = playbook(tmp_path, "--syntax-check", "-i", str(INVENTORY / "hosts.example.yml"), "site.yml")
    assert result.returncode == 0, result.output


def test_site_imports_every_tier() -> None:
    site = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    imported = [entry["ansible.builtin.import_playbook"] for entry in site]
    # The GitHub stand-in comes first (fleets without GitHub collect from it); then the tiers in order.
    assert imported == ["github_simulator.yml"] + [f"{t}.yml" for t in TIERS]
    for tier in ("github_simulator", *TIERS):
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
