"""status.yml's row filters (playbooks/filter_plugins/fleet_status.py) on the outputs the checks print."""

from __future__ import annotations

import importlib.util
import json

from tests.support import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location(
    "fleet_status", REPO_ROOT / "playbooks" / "filter_plugins" / "fleet_status.py"
)
assert _SPEC and _SPEC.loader
fs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fs)

SUPERVISOR = """\
stargazer-celery                 STOPPED   Dec 06 08:40 AM
stargazer-gunicorn               RUNNING   pid 812, uptime 0:10:02
stargazer-nginx                  RUNNING   pid 830, uptime 0:10:01
"""

RAY_STATUS = """\
======== Autoscaler status: 2026-12-06 08:30:00 ========
Node status
---------------------------------------------------------------
Active:
 1 node_0123456789abcdef0123456789abcdef0123456789abcdef01234567
 1 node_1123456789abcdef0123456789abcdef0123456789abcdef01234567
Pending:
 (no pending nodes)
Recent failures:
 (no failures)
"""


def test_supervisor_rows_flag_every_program_not_running() -> None:
    rows = fs.supervisor_rows(SUPERVISOR)
    assert [(r["service"], r["state"]) for r in rows] == [
        ("stargazer-celery", "DOWN"), ("stargazer-gunicorn", "OK"), ("stargazer-nginx", "OK"),
    ]
    assert rows[0]["detail"].startswith("STOPPED")


def test_a_dead_supervisord_is_one_down_row() -> None:
    rows = fs.supervisor_rows("unix:///x/supervisor.sock no such file\n")
    detail = "unix:///x/supervisor.sock no such file"
    assert rows == [{"service": "supervisord", "state": "DOWN", "detail": detail}]


def test_ray_rows_count_active_nodes_against_the_inventory() -> None:
    assert fs.ray_rows(RAY_STATUS, 0, 2)[0] == {"service": "ray nodes", "state": "OK", "detail": "2/2 alive"}
    assert fs.ray_rows(RAY_STATUS, 0, 3)[0]["state"] == "DOWN"
    failed = fs.ray_rows("ConnectionError: could not reach GCS\n", 1, 3)[0]
    assert failed["state"] == "DOWN" and "could not reach GCS" in failed["detail"]


def test_a_queue_without_consumers_is_down() -> None:
    listed = json.dumps([{"name": "celery", "messages": 4, "consumers": 0}])
    assert fs.rabbitmq_rows(listed, 0, ["celery"]) == [
        {"service": "queue celery", "state": "DOWN", "detail": "4 waiting, 0 consumer(s)"}
    ]
    healthy = json.dumps([{"name": "celery", "messages": 0, "consumers": 1}])
    assert fs.rabbitmq_rows(healthy, 0, ["celery"])[0]["state"] == "OK"
    assert fs.rabbitmq_rows("[]", 0, ["celery"])[0]["state"] == "DOWN"


def test_celery_ping_needs_a_pong_from_this_hosts_worker() -> None:
    pong = json.dumps({"stargazer-celery@h": {"ok": "pong"}})
    assert fs.celery_rows(pong, "stargazer-celery")[0]["state"] == "OK"
    silent = "Error: No nodes replied within time constraint"
    assert fs.celery_rows(silent, "stargazer-celery")[0]["state"] == "DOWN"
    assert fs.celery_rows(json.dumps({"other@h": {"ok": "pong"}}), "stargazer-celery")[0]["state"] == "DOWN"


def test_http_rows() -> None:
    assert fs.http_row("nginx", {"status": 200, "url": "https://127.0.0.1:443/healthz"})[0]["state"] == "OK"
    down = fs.http_row("gunicorn", {"status": -1, "msg": "Status code was -1: Connection refused"})[0]
    assert down["state"] == "DOWN" and "Connection refused" in down["detail"]


def test_headroom_rows_flag_low_disk_and_memory() -> None:
    ok = fs.headroom_rows("100000000 50000000\n16000000 8000000\n", 10, 512)
    assert [r["state"] for r in ok] == ["OK", "OK"]
    low = fs.headroom_rows("100000000 5000000\n16000000 100000\n", 10, 512)
    assert [r["state"] for r in low] == ["LOW", "LOW"]
    assert fs.headroom_rows("", 10, 512)[0]["state"] == "DOWN"


def test_model_rows_flag_hosts_that_disagree() -> None:
    same = fs.model_rows({"p1": "v1", "p2": "v1"})
    assert {h: r[0]["state"] for h, r in same.items()} == {"p1": "OK", "p2": "OK"}
    differ = fs.model_rows({"p1": "v1", "p2": "v2"})
    assert {h: r[0]["state"] for h, r in differ.items()} == {"p1": "DIFFERS", "p2": "DIFFERS"}
    assert fs.model_rows({"p1": ""})["p1"][0]["state"] == "DOWN"


def test_table_and_problems() -> None:
    report = {"p1": fs.supervisor_rows(SUPERVISOR), "dev": fs.ray_rows(RAY_STATUS, 0, 2)}
    table = fs.status_table(report).splitlines()
    assert table[0].split() == ["HOST", "SERVICE", "STATE", "DETAIL"]
    assert len(table) == 5
    assert fs.status_problems(report) == ["p1 stargazer-celery: DOWN STOPPED Dec 06 08:40 AM"]
