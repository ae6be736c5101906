"""`ansible-playbook --check --diff` previews a first run of the production tier on a fresh host, without failing.

A fresh namespace host (no checkout, no venv, no service user, nothing under supervisor) gets the production
play in check mode over real SSH: every role must get through it, report what it would change, and leave the
host exactly as it was.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from tests.playbooks.ansible_run import playbook
from tests.playbooks.nshost import NamespaceHost
from tests.playbooks.test_production_converge import _write_inventory
from tests.support import require_executable

pytestmark = pytest.mark.integration


def test_check_diff_previews_a_first_run_on_a_fresh_host(workdir: Path, ns_host: NamespaceHost, vault) -> None:
    for tool in ("supervisord", "nginx", "rabbitmq-server", "git", "openssl"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    user = f"sgzc{secrets.token_hex(2)}"
    inventory, paths, _ = _write_inventory(workdir, ns_host, user)
    vault_file, password, values = vault
    run = playbook(
        workdir, "-i", str(inventory), "--vault-password-file", str(password), "-e", f"@{vault_file}",
        "site.yml", "--limit", "production", "--check", "--diff", timeout=900,
    )
    assert run.returncode == 0, run.output[-8000:]
    recap = run.recap()["prod1"]
    assert recap["failed"] == 0 and recap["unreachable"] == 0, recap
    assert recap["changed"] >= 10, recap  # a first run has much to do, and the preview says so
    # The diff shows what would be written (the nginx config with its HTTPS server, the env file) ...
    assert "ssl_certificate" in run.output and "STARGAZER_APP_DIR=" in run.output
    # ... and never a secret.
    for name, value in values.items():
        if value:
            assert value not in run.output, f"{name} leaked into the --check --diff output"
    # Nothing was made: no checkout, no config, no service account, no supervisord.
    for path in paths.values():
        assert not path.exists(), f"--check created {path}"
    assert subprocess.run(["id", user], capture_output=True, check=False).returncode != 0
