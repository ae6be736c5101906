"""scripts/demo.py's evaluation-set decisions and its settings, without starting the demo.

The demo itself (tests/playbooks/test_demo_inventory.py) runs for minutes and only ever meets a fresh
``var/demo``; what it decides about an existing one (reuse the set or make a new one, override the gate for a
serving model trained on the set) is checked here on files laid out as the demo leaves them.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def demo() -> ModuleType:
    """scripts/demo.py, imported as ``make demo`` runs it (``python -m scripts.demo``)."""
    return importlib.import_module("scripts.demo")


def _dataset(path: Path, names: list[str], *, gz: bool) -> Path:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["full_name", "stars"])
    writer.writerows([name, 100 + i] for i, name in enumerate(names))
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _served(tmp_path: Path, version: str, names: list[str]) -> Path:
    release = tmp_path / "production" / "releases" / version
    release.mkdir(parents=True)
    _dataset(release / "dataset.csv.gz", names, gz=True)
    current = tmp_path / "production" / "current"
    current.symlink_to(release)
    return current


def test_a_serving_model_trained_on_the_evaluation_set_is_overridden_with_a_reason(
        demo: ModuleType, tmp_path: Path) -> None:
    evalset = _dataset(tmp_path / "evalset-20261206T000000Z-0123abcd.csv.gz", ["a/one", "B/Two"], gz=True)
    current = _served(tmp_path, "20261205T000000Z-aaaaaaaa", ["b/two", "c/three"])  # B/Two: casefolded
    reason = demo.stale_gate_reason(current, "20261206T010000Z-bbbbbbbb", evalset)
    assert reason is not None
    assert "20261205T000000Z-aaaaaaaa" in reason and evalset.name in reason


def test_the_gate_judges_when_the_serving_model_never_saw_the_evaluation_set(
        demo: ModuleType, tmp_path: Path) -> None:
    evalset = _dataset(tmp_path / "evalset-20261206T000000Z-0123abcd.csv.gz", ["a/one"], gz=True)
    current = _served(tmp_path, "20261205T000000Z-aaaaaaaa", ["c/three"])
    assert demo.stale_gate_reason(current, "20261206T010000Z-bbbbbbbb", evalset) is None
    # Pushing the served version again (a second demo run) and a host without a set: no override either.
    trained_on_it = _served(tmp_path / "other", "20261205T000000Z-aaaaaaaa", ["a/one"])
    assert demo.stale_gate_reason(trained_on_it, "20261205T000000Z-aaaaaaaa", evalset) is None
    assert demo.stale_gate_reason(trained_on_it, "20261206T010000Z-bbbbbbbb", None) is None


def _host(demo: ModuleType, tmp_path: Path) -> object:
    return demo.Host(tmp_path / "inventory" / "demo.yml", {
        "demo_root": str(tmp_path), "demo_evalset_dir": "{{ demo_root }}/evalset",
        "stargazer_model_dir": "{{ demo_root }}/production"})


def test_the_evaluation_set_is_reused_only_for_the_same_collection_and_an_intact_training_file(
        demo: ModuleType, tmp_path: Path) -> None:
    host = _host(demo, tmp_path)
    host.evalset_dir.mkdir()
    evalset = _dataset(host.evalset_dir / "evalset-20261206T000000Z-0123abcd.csv.gz", ["a/one"], gz=True)
    training = _dataset(tmp_path / "train.csv", ["c/three"], gz=False)
    (host.evalset_dir / "demo-key.json").write_text(json.dumps(
        {"key": "K", "evalset": evalset.name, "training": demo.file_digest(training)}))
    assert demo.reusable_evalset(host, "K", training) == evalset
    assert demo.reusable_evalset(host, "other collection or sizes", training) is None
    _dataset(training, ["c/three", "d/four"], gz=False)  # the training file changed since
    assert demo.reusable_evalset(host, "K", training) is None


def test_the_deploy_line_quotes_the_gate_record_of_the_version(demo: ModuleType, tmp_path: Path) -> None:
    host = _host(demo, tmp_path)
    (tmp_path / "production").mkdir()
    gate = {"decision": "first-model", "rows": 40, "evalset": "evalset-x.csv.gz",
            "pushed": {"spearman": 0.812, "mae_log": 0.431, "coverage": 0.776}}
    entries = [{"version": "V1", "gate": gate}, {"version": "V2"}]
    (tmp_path / "production" / "deploy-log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert demo.gate_summary(host, "V1") == (
        "; gate first-model: Spearman 0.81, MAE log 0.43, coverage 0.78 on 40 held-out repositories")
    assert demo.gate_summary(host, "V2") == "; no quality gate scores"


def test_ansible_playbook_inherits_the_callers_environment_with_the_venv_first(demo: ModuleType) -> None:
    settings = demo.DemoSettings.from_env({"PATH": "/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": "/t", "HOME": "/h"})
    env = settings.ansible_environment("/venv/bin", ANSIBLE_NOCOLOR="1")
    assert env == {"PATH": "/venv/bin:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": "/t", "HOME": "/h",
                   "ANSIBLE_NOCOLOR": "1"}
    assert demo.DemoSettings.from_env({}).ansible_environment("/venv/bin")["PATH"].startswith(
        "/venv/bin:/usr/local/bin:")
