"""The githooks role installs the quality gate's evaluation set: real ansible-playbook, the role's own tasks
and defaults, on this machine (connection local), twice; then a new eval set version replaces the old one.

Only the githooks role's tasks run here (its defaults loaded as they are): its dependencies (common: checkout
and venv; stargazer: accounts) are converged with it by tests/playbooks/test_production_converge.py; this
checkout and its venv stand in for the deployed ones.
"""

from __future__ import annotations

import gzip
import hashlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from githooks import gate
from tests.playbooks.ansible_run import PLAYBOOKS, playbook
from tests.support import DEPLOY_KEYS, REPO_ROOT, require_root

pytestmark = pytest.mark.integration


def _write_evalset(path: Path, rows: int) -> Path:
    from data_collection.dataset import render_csv
    from synthetic.dataset import synthetic_dataset

    frame = synthetic_dataset(rows, 31)
    records = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in frame.to_dict("records")]
    path.write_bytes(gzip.compress(render_csv(records), mtime=0))
    return path


def _play(workdir: Path, evalset: Path) -> Path:
    role = PLAYBOOKS / "roles" / "githooks"
    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "stargazer_install_packages": False,
        "stargazer_user": "root",
        "stargazer_group": "root",
        "stargazer_home": str(workdir / "home"),
        "stargazer_app_dir": str(REPO_ROOT),
        "stargazer_venv_dir": str(Path(sys.executable).parent.parent),
        "stargazer_config_dir": str(workdir / "etc"),
        "stargazer_model_dir": str(workdir / "models"),
        "stargazer_deploy_public_key_file": str(DEPLOY_KEYS.write_public(workdir / "deploy_public_key")),
        "common_checkout": {"changed": False},
        "githooks_repo_dir": str(workdir / "git" / "stargazer-deploy.git"),
        "githooks_check_user": "",
        "githooks_authorize_development_host": False,
        "githooks_evalset_file": str(evalset),
    }
    # Extra vars: they win over the role defaults the play loads (as inventory values win over role defaults).
    (workdir / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"prod1": {}}}}))
    (workdir / "vars.yml").write_text(yaml.safe_dump(hostvars))
    play = [{
        "name": "githooks role tasks with its defaults",
        "hosts": "prod1",
        "gather_facts": False,
        "vars_files": [str(role / "defaults" / "main.yml")],
        "tasks": [{"name": "Its tasks", "ansible.builtin.import_tasks": str(role / "tasks" / "main.yml")}],
    }]  # fmt: skip
    path = workdir / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


def _config(repo: Path, key: str) -> str:
    result = subprocess.run(["git", f"--git-dir={repo}", "config", "--get", key], capture_output=True,
                            text=True, check=False)  # fmt: skip
    return result.stdout.strip()


def test_the_role_installs_the_evaluation_set_with_its_sha256_then_replaces_it(tmp_path: Path) -> None:
    require_root("the role installs root-owned files")
    (tmp_path / "controller").mkdir()
    source = _write_evalset(tmp_path / "controller" / "evalset-20261206T100000Z-aaaaaaaa.csv.gz", 40)
    play = _play(tmp_path, source)
    inventory = ["-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'vars.yml'}"]

    first = playbook(tmp_path, *inventory, str(play))
    assert first.returncode == 0, first.output[-4000:]
    second = playbook(tmp_path, *inventory, str(play))
    assert second.returncode == 0, second.output[-4000:]
    assert first.recap()["prod1"]["changed"] >= 3 and second.recap()["prod1"]["changed"] == 0, second.output

    installed = tmp_path / "etc" / "evalset" / source.name
    info = installed.stat()
    assert installed.read_bytes() == source.read_bytes()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o640)
    repo = tmp_path / "git" / "stargazer-deploy.git"
    assert _config(repo, "stargazer.evalset") == str(installed)
    assert _config(repo, "stargazer.evalsetsha256") == hashlib.sha256(source.read_bytes()).hexdigest()
    assert _config(repo, "stargazer.gatespearmanmargin") == "0.05"
    assert _config(repo, "stargazer.gatemaelogfloor") == "2"
    gate.verify_evalset(installed, _config(repo, "stargazer.evalsetsha256"))

    newer = _write_evalset(tmp_path / "controller" / "evalset-20261207T100000Z-bbbbbbbb.csv.gz", 50)
    third = playbook(tmp_path, *inventory, str(_play(tmp_path, newer)))
    assert third.returncode == 0, third.output[-4000:]
    assert sorted(p.name for p in installed.parent.iterdir()) == [newer.name]
    assert _config(repo, "stargazer.evalsetsha256") == hashlib.sha256(newer.read_bytes()).hexdigest()
