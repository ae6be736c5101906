"""`make rehearsal` end to end: six namespace hosts previewed and converged by site.yml over SSH, the
operator's pipeline, status.yml both ways, the fault drills, and a teardown that leaves nothing behind.

The run is the session's one rehearsed fleet (tests/rehearsed_fleet.py): ``python -m rehearsal all`` under
its own prefix, subnet and directory. Each test reads what that run measured (results.json, timings.json)
and what it left on the machine; the last one tears it down as ``make rehearsal-down`` does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rehearsal import hosts
from tests.rehearsed_fleet import RUN_TIMEOUT, RehearsedFleet

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(RUN_TIMEOUT + 900)]


def test_the_rehearsal_passes_every_stage(rehearsed_fleet: RehearsedFleet) -> None:
    assert rehearsed_fleet.returncode == 0, rehearsed_fleet.output[-5000:]
    print(rehearsed_fleet.output)
    for stage in ("up", "preview", "converge-1", "converge-2", "collect", "ray-status", "train", "deploy",
                  "predict", "drill-ray", "restore-w2", "drill-deploy", "redeploy", "status-up",
                  "status-down"):
        assert stage in rehearsed_fleet.timings, stage


def test_second_converge_changes_nothing_on_any_host(rehearsed_fleet: RehearsedFleet) -> None:
    first = rehearsed_fleet.results["converge-1_changed"]
    second = rehearsed_fleet.results["converge-2_changed"]
    assert len(second) == 6 and set(second.values()) == {0}, second
    assert all(count > 0 for count in first.values()), first


def test_tuning_ran_on_the_head_and_both_workers(rehearsed_fleet: RehearsedFleet) -> None:
    assert rehearsed_fleet.results["ray_status"]["active_nodes"] == 3
    trained = rehearsed_fleet.results["train"]
    assert len(trained["trial_nodes"]) == 3 and trained["failed_trials"] == 0, trained


def test_each_production_host_predicts_over_https_with_the_deployed_model(
    rehearsed_fleet: RehearsedFleet,
) -> None:
    predictions = rehearsed_fleet.results["predictions"]
    assert set(predictions) == {"p1", "p2"}
    version = rehearsed_fleet.results["train"]["version"]
    assert any("deployed" in line and version in line for line in rehearsed_fleet.results["deploy"])
    for answer in predictions.values():
        assert version in json.dumps(answer), answer


def test_a_lost_ray_worker_does_not_lose_the_tuning(rehearsed_fleet: RehearsedFleet) -> None:
    drill = rehearsed_fleet.results["drill_ray_worker_lost"]
    assert drill["victim"] == "w2" and drill["version"]


def test_a_production_host_lost_during_deploy_switches_nothing(rehearsed_fleet: RehearsedFleet) -> None:
    drill = rehearsed_fleet.results["drill_production_lost"]
    assert drill["message"].startswith("Error: no host switched")
    assert "did not accept" in drill["message"]
    assert drill["serving"]["p1"] == drill["serving"]["p2"] == rehearsed_fleet.results["train"]["version"]
    assert any("deployed" in line for line in rehearsed_fleet.results["redeploy"])


def test_status_passes_when_up_and_names_a_stopped_celery_worker(rehearsed_fleet: RehearsedFleet) -> None:
    up = rehearsed_fleet.results["status_all_up"]
    assert up["exit"] == 0 and " DOWN " not in up["table"]
    for service in ("ray nodes", "queue stargazer", "celery stargazer-celery", "gunicorn", "nginx", "model",
                    "disk", "memory", "stargazer-ray-head", "stargazer-ray-worker"):
        assert service in up["table"], service
    down = rehearsed_fleet.results["status_celery_stopped"]
    assert down["exit"] != 0
    failing = [line for line in down["table"].splitlines() if " DOWN " in line]
    assert failing and all(line.startswith("rehearsal-production-2") for line in failing), down["table"]
    assert any("stargazer-celery" in line for line in failing)


@pytest.mark.fleet_teardown
def test_teardown_leaves_nothing_behind(rehearsed_fleet: RehearsedFleet) -> None:
    said = rehearsed_fleet.down()
    assert "removed" in said, said
    assert hosts.existing_namespaces(rehearsed_fleet.prefix) == []
    assert hosts.accounts(rehearsed_fleet.prefix) == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert f"{rehearsed_fleet.prefix}-" not in links
    assert not list(Path("/tmp").glob(f"{rehearsed_fleet.prefix}-*-ray"))
    assert not list(Path("/etc/sudoers.d").glob(f"stargazer-check-{rehearsed_fleet.prefix}-*"))
    assert not rehearsed_fleet.root.exists()
