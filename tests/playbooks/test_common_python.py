"""The common role refuses a Python too old for the pinned stack before pip, in one line naming the fix.

Real ansible-playbook, production play, local connection: `common_python` points at a stand-in interpreter
that reports 3.10 (Ubuntu 22.04's python3), so the run must stop on the version check with nothing installed.
"""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

import yaml

from tests.playbooks.ansible_run import playbook
from tests.support import DEPLOY_KEYS, REPO_ROOT

OLD_PYTHON = """#!/bin/sh
# Stands in for Ubuntu 22.04's python3: whatever it is asked, it answers like Python 3.10 would.
case "$*" in
  *version_info*) echo 3.10 ;;
  *) echo "Python 3.10.12" ;;
esac
"""


def _inventory(workdir: Path, python: Path) -> Path:
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "stargazer_install_packages": False,
        "stargazer_manage_user": False,
        "stargazer_user": "root",
        "stargazer_group": "root",
        "stargazer_app_dir": str(workdir / "app"),
        "stargazer_config_dir": str(workdir / "etc"),
        "stargazer_log_dir": str(workdir / "log"),
        "stargazer_run_dir": str(workdir / "run"),
        "stargazer_state_dir": str(workdir / "state"),
        "common_app_repo": f"file://{REPO_ROOT}",
        "common_python": str(python),
        "vault_stargazer_deploy_public_key": DEPLOY_KEYS.public_text,
        "vault_stargazer_broker_password": secrets.token_hex(24),
        "vault_stargazer_secret_key": secrets.token_hex(32),
    }
    inventory = {"all": {"children": {"production": {"hosts": {"old": host}}}}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return inv / "hosts.yml"


def _failure(output: str, host: str) -> dict[str, object]:
    """The first failed task's result (printed as YAML by ansible.cfg's callback_result_format)."""
    found = re.search(rf"^fatal: \[{re.escape(host)}\]: FAILED! => \n(.*?)\n\n", output, re.M | re.S)
    assert found, output[-3000:]
    return yaml.safe_load(found.group(1))


def test_an_old_python_stops_the_play_before_pip_with_one_line(tmp_path: Path) -> None:
    python = tmp_path / "python3.10"
    python.write_text(OLD_PYTHON)
    python.chmod(0o755)
    run = playbook(tmp_path, "-i", str(_inventory(tmp_path, python)), "production.yml")
    assert run.returncode != 0
    assert run.recap()["old"]["failed"] == 1
    failure = _failure(run.output, "old")
    assert failure["msg"] == (
        f"{python} is Python 3.10, the pinned stack needs 3.11 or later: boot an image whose python3 is "
        "(Debian 12, Ubuntu 24.04; fleet.yml `image`) or set common_python to such an interpreter"
    )
    assert "TASK [common : Check that this Python runs the pinned stack (before pip)]" in run.output
    # Stopped before the checkout, the virtualenv and pip.
    assert "TASK [common : Install the Python requirements" not in run.output
    assert not (tmp_path / "app").exists()

