"""`make rehearsal` end to end: six namespace hosts converged by site.yml over SSH, the operator's pipeline,
status.yml both ways, the fault drills, and a teardown that leaves nothing behind.

One run of ``python -m rehearsal all`` (what ``make rehearsal`` runs) under its own prefix, subnet and
directory, so it never touches a fleet an operator keeps up; each test then reads what that run measured
(results.json, timings.json) and what it left on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rehearsal import hosts
from tests.support import REPO_ROOT, require_executable, require_root

#: The whole run must stay under the issue's 20 minutes; the pytest timeout leaves room for teardown.
BUDGET_SECONDS = 20 * 60

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(BUDGET_SECONDS + 600)]


@dataclass
class Rehearsal:
    prefix: str
    root: Path
    returncode: int
    output: str
    results: dict
    timings: dict


@pytest.fixture(scope="module")
def rehearsal() -> Iterator[Rehearsal]:
    require_root("network namespaces, sshd and service accounts")
    for tool in ("ip", "sshd", "supervisord", "nginx", "rabbitmq-server", "git", "openssl"):
        require_executable(tool, f"/usr/sbin/{tool}", f"/usr/bin/{tool}")
    prefix = f"sgt{secrets.token_hex(2)}"
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    root.chmod(0o755)  # the hosts' service accounts traverse it
    env = {**os.environ, "REHEARSAL_PREFIX": prefix, "REHEARSAL_DIR": str(root), "REHEARSAL_KEEP": ""}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rehearsal", "all"], cwd=REPO_ROOT, env=env, capture_output=True,
            text=True, timeout=BUDGET_SECONDS + 300, check=False,
        )
        read = lambda name: json.loads((root / name).read_text()) if (root / name).exists() else {}  # noqa: E731
        if proc.returncode != 0 and (root / "log").exists():
            # The stage logs say why; they would go with the teardown below.
            kept = REPO_ROOT / "test-artifacts" / f"rehearsal-{prefix}"
            shutil.copytree(root / "log", kept, dirs_exist_ok=True)
        yield Rehearsal(prefix, root, proc.returncode, proc.stdout + proc.stderr, read("results.json"),
                        read("timings.json"))
    finally:
        subprocess.run([sys.executable, "-m", "rehearsal", "down"], cwd=REPO_ROOT, env=env,
                       capture_output=True, timeout=300, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_the_rehearsal_passes_within_its_budget(rehearsal: Rehearsal) -> None:
    assert rehearsal.returncode == 0, rehearsal.output[-5000:]
    print(rehearsal.output)
    assert rehearsal.timings["total"] < BUDGET_SECONDS, rehearsal.timings
    for stage in ("up", "converge-1", "converge-2", "collect", "ray-status", "train", "deploy", "predict",
                  "drill-ray", "restore-w2", "drill-deploy", "redeploy", "status-up", "status-down"):
        assert stage in rehearsal.timings, stage


def test_second_converge_changes_nothing_on_any_host(rehearsal: Rehearsal) -> None:
    first = rehearsal.results["converge-1_changed"]
    second = rehearsal.results["converge-2_changed"]
    assert len(second) == 6 and set(second.values()) == {0}, second
    assert all(count > 0 for count in first.values()), first


def test_tuning_ran_on_the_head_and_both_workers(rehearsal: Rehearsal) -> None:
    assert rehearsal.results["ray_status"]["active_nodes"] == 3
    trained = rehearsal.results["train"]
    assert len(trained["trial_nodes"]) == 3 and trained["failed_trials"] == 0, trained


def test_each_production_host_predicts_over_https_with_the_deployed_model(rehearsal: Rehearsal) -> None:
    predictions = rehearsal.results["predictions"]
    assert set(predictions) == {"p1", "p2"}
    version = rehearsal.results["train"]["version"]
    assert any("deployed" in line and version in line for line in rehearsal.results["deploy"])
    for answer in predictions.values():
        assert version in json.dumps(answer), answer


def test_a_lost_ray_worker_does_not_lose_the_tuning(rehearsal: Rehearsal) -> None:
    drill = rehearsal.results["drill_ray_worker_lost"]
    assert drill["victim"] == "w2" and drill["version"]


def test_a_production_host_lost_during_deploy_switches_nothing(rehearsal: Rehearsal) -> None:
    drill = rehearsal.results["drill_production_lost"]
    assert drill["message"].startswith("Error: no host switched")
    assert "did not accept" in drill["message"]
    assert drill["serving"]["p1"] == drill["serving"]["p2"] == rehearsal.results["train"]["version"]
    assert any("deployed" in line for line in rehearsal.results["redeploy"])


def test_status_passes_when_up_and_names_a_stopped_celery_worker(rehearsal: Rehearsal) -> None:
    up = rehearsal.results["status_all_up"]
    assert up["exit"] == 0 and " DOWN " not in up["table"]
    for service in ("ray nodes", "queue stargazer", "celery stargazer-celery", "gunicorn", "nginx", "model",
                    "disk", "memory", "stargazer-ray-head", "stargazer-ray-worker"):
        assert service in up["table"], service
    down = rehearsal.results["status_celery_stopped"]
    assert down["exit"] != 0
    failing = [line for line in down["table"].splitlines() if " DOWN " in line]
    assert failing and all(line.startswith("rehearsal-production-2") for line in failing), down["table"]
    assert any("stargazer-celery" in line for line in failing)


def test_teardown_leaves_nothing_behind(rehearsal: Rehearsal) -> None:
    assert hosts.existing_namespaces(rehearsal.prefix) == []
    assert hosts.accounts(rehearsal.prefix) == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert f"{rehearsal.prefix}-" not in links
    assert not list(Path("/tmp").glob(f"{rehearsal.prefix}-*-ray"))
    assert sorted(p.name for p in rehearsal.root.iterdir()) == ["log", "results.json", "timings.json"]
