"""`ansible-playbook --check --diff` previews a first run of site.yml on fresh hosts, without failing.

A fresh namespace host (no checkout, no venv, no service user, nothing under supervisor) stands for one host
of every tier (four inventory names, one address, each with its own paths): site.yml in check mode over real
SSH must get every role through, report what it would change, and leave the host exactly as it was.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import playbook
from tests.playbooks.nshost import NamespaceHost
from tests.playbooks.test_production_converge import _write_inventory
from tests.support import require_executable

pytestmark = pytest.mark.integration


def _every_tier(inventory: Path, paths: dict[str, Path]) -> list[Path]:
    """Add a development host, a Ray worker and an orchestration host on the same address, own paths each."""
    data = yaml.safe_load(inventory.read_text())
    prod = data["all"]["children"]["production"]["hosts"]["prod1"]
    made: list[Path] = []
    tiers = {"orchestration": "orch1", "development": "dev1", "ray_workers": "worker1"}
    for tier, name in tiers.items():
        root = inventory.parent.parent / name
        made.append(root)
        host = {**prod, **{key: str(root / Path(value).relative_to(inventory.parent.parent))
                           for key, value in prod.items()
                           if isinstance(value, str) and value.startswith(str(inventory.parent.parent))
                           and not key.startswith("ansible_")}}
        host.update({
            "private_ip": prod["ansible_host"],
            "ray_head_temp_dir": str(root / "ray"),
            "ray_worker_temp_dir": str(root / "ray"),
            "deploy_client_user": f"{prod['stargazer_user']}d",
            "deploy_client_group": f"{prod['stargazer_user']}d",
            "deploy_client_home": str(root / "deploy-home"),
            "deploy_client_secret_file": str(root / "deploy-etc" / "deploy_secret"),
        })
        data["all"]["children"][tier] = {"hosts": {name: host}}
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return made


def test_check_diff_previews_a_first_run_of_every_tier_on_a_fresh_host(
    workdir: Path, ns_host: NamespaceHost, vault
) -> None:
    for tool in ("supervisord", "nginx", "rabbitmq-server", "git", "openssl"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    user = f"sgzc{secrets.token_hex(2)}"
    inventory, paths, _ = _write_inventory(workdir, ns_host, user)
    other_roots = _every_tier(inventory, paths)
    vault_file, password, values = vault
    run = playbook(
        workdir, "-i", str(inventory), "--vault-password-file", str(password), "-e", f"@{vault_file}",
        "site.yml", "--check", "--diff", timeout=1200,
    )
    assert run.returncode == 0, run.output[-8000:]
    recaps = run.recap()
    assert set(recaps) >= {"prod1", "dev1", "worker1", "orch1"}, recaps
    for host, recap in recaps.items():
        assert recap["failed"] == 0 and recap["unreachable"] == 0, (host, recap)
    assert recaps["prod1"]["changed"] >= 10, recaps  # a first run has much to do, and the preview says so
    # The diff shows what would be written (the nginx config with its HTTPS server, the env file) ...
    assert "ssl_certificate" in run.output and "STARGAZER_APP_DIR=" in run.output
    # ... and never a secret.
    for name, value in values.items():
        if value:
            assert value not in run.output, f"{name} leaked into the --check --diff output"
    # Nothing was made: no checkout, no config, no service account, no supervisord.
    for path in [*paths.values(), *other_roots]:
        assert not path.exists(), f"--check created {path}"
    for account in (user, f"{user}d"):
        assert subprocess.run(["id", account], capture_output=True, check=False).returncode != 0
