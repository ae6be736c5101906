"""Filters of status.yml: turn what each check printed into rows, and the rows into one table.

Why Python and not Jinja: each check's output (supervisorctl, ``ray status``, rabbitmqctl's JSON, Celery's
ping, df and /proc/meminfo) needs a few lines of parsing that would be unreadable as templates, and here
they are unit-tested (tests/playbooks/test_status_filters.py). A row is ``{host, service, state, detail}``;
every state other than ``OK`` makes status.yml fail.
"""

from __future__ import annotations

import json
import re
from typing import Any

OK = "OK"
DOWN = "DOWN"
LOW = "LOW"
DIFFERS = "DIFFERS"
_PROGRAM = re.compile(
    r"^(?P<name>\S+)\s+(?P<state>STOPPED|STARTING|RUNNING|BACKOFF|STOPPING|EXITED|FATAL|UNKNOWN)\b\s*(?P<rest>.*)$"
)
_RAY_NODE = re.compile(r"^\s+\d+\s+node_[0-9a-f]+", re.MULTILINE)


def row(service: str, state: str, detail: str) -> dict[str, str]:
    return {"service": service, "state": state, "detail": detail}


def supervisor_rows(stdout: str) -> list[dict[str, str]]:
    """One row per supervisor program (RUNNING is OK, anything else is DOWN); supervisord itself down is
    one DOWN row."""
    rows = []
    for line in stdout.splitlines():
        match = _PROGRAM.match(line.strip())
        if match:
            state = OK if match["state"] == "RUNNING" else DOWN
            rows.append(row(match["name"], state, f"{match['state']} {match['rest']}".strip()))
    if not rows:
        first = next((line.strip() for line in stdout.splitlines() if line.strip()), "no answer")
        rows.append(row("supervisord", DOWN, first[:120]))
    return rows


def ray_rows(stdout: str, rc: int, expected: int) -> list[dict[str, str]]:
    """Nodes alive as the head sees them (``ray status``'s Active section) against the inventory's count."""
    if rc != 0:
        last = next((line for line in reversed(stdout.splitlines()) if line.strip()), f"exit {rc}")
        return [row("ray nodes", DOWN, f"ray status failed: {last.strip()[:100]}")]
    active = stdout.split("Active:", 1)[1].split("Pending:", 1)[0] if "Active:" in stdout else ""
    alive = len(_RAY_NODE.findall(active))
    state = OK if alive >= expected else DOWN
    return [row("ray nodes", state, f"{alive}/{expected} alive")]


def rabbitmq_rows(stdout: str, rc: int, queues: list[str]) -> list[dict[str, str]]:
    """Depth and consumers of the application's queues; a queue nobody consumes is DOWN."""
    if rc != 0:
        return [row("rabbitmq", DOWN, (stdout.strip().splitlines() or [f"rabbitmqctl exit {rc}"])[-1][:120])]
    listed = {q["name"]: q for q in json.loads(stdout or "[]")}
    rows = []
    for name in queues:
        queue = listed.get(name)
        if queue is None:
            rows.append(row(f"queue {name}", DOWN, "missing (no worker ever declared it)"))
            continue
        consumers = int(queue.get("consumers", 0))
        detail = f"{queue.get('messages', 0)} waiting, {consumers} consumer(s)"
        rows.append(row(f"queue {name}", OK if consumers > 0 else DOWN, detail))
    return rows


def celery_rows(stdout: str, program: str) -> list[dict[str, str]]:
    """The host's Celery worker (node ``<program>@<hostname>``) must answer ``inspect ping`` with pong."""
    answered: dict[str, Any] = {}
    text = stdout.strip()
    if text.startswith("{"):
        answered = json.loads(text.splitlines()[0])
    pongs = sorted(
        name
        for name, reply in answered.items()
        if name.startswith(f"{program}@") and isinstance(reply, dict) and reply.get("ok") == "pong"
    )
    if pongs:
        return [row(f"celery {program}", OK, f"pong from {', '.join(pongs)}")]
    return [row(f"celery {program}", DOWN, "no worker answered ping")]


def http_row(service: str, result: dict[str, Any]) -> list[dict[str, str]]:
    """A health URL fetched by ansible.builtin.uri: 200 is OK."""
    status = result.get("status", -1)
    if status == 200:
        return [row(service, OK, f"200 from {result.get('url', '')}")]
    reason = result.get("msg") or f"status {status}"
    return [row(service, DOWN, str(reason).splitlines()[0][:120])]


def headroom_rows(stdout: str, min_disk_percent: float, min_memory_mb: float) -> list[dict[str, str]]:
    """``df -Pk`` total/free kB on the first line, MemTotal/MemAvailable kB on the second."""
    try:
        disk_total, disk_free = (int(v) for v in stdout.splitlines()[0].split())
        mem_total, mem_free = (int(v) for v in stdout.splitlines()[1].split())
    except (ValueError, IndexError):
        return [row("headroom", DOWN, f"unreadable: {stdout.strip()[:80]!r}")]
    disk_pct = 100.0 * disk_free / max(disk_total, 1)
    mem_mb = mem_free / 1024
    return [
        row(
            "disk",
            OK if disk_pct >= min_disk_percent else LOW,
            f"{disk_free / 1048576:.1f} GiB free ({disk_pct:.0f} %)",
        ),
        row(
            "memory",
            OK if mem_mb >= min_memory_mb else LOW,
            f"{mem_mb / 1024:.1f} GiB available of {mem_total / 1048576:.1f} GiB",
        ),
    ]


def model_rows(versions: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """The deployed version per production host; when the hosts disagree every one of them is flagged."""
    distinct = {v for v in versions.values() if v}
    rows = {}
    for host, version in versions.items():
        if not version:
            rows[host] = [row("model", DOWN, "no model deployed (no current release)")]
        elif len(distinct) > 1:
            rows[host] = [row("model", DIFFERS, f"{version} (hosts serve {len(distinct)} versions)")]
        else:
            rows[host] = [row("model", OK, version)]
    return rows


def status_table(rows_by_host: dict[str, list[dict[str, str]]]) -> str:
    """One aligned table, one row per host and service."""
    lines = [
        (host, r["service"], r["state"], r["detail"])
        for host, rows in sorted(rows_by_host.items()) for r in rows
    ]
    header = ("HOST", "SERVICE", "STATE", "DETAIL")
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(3)]
    out = []
    for cells in [header, *lines]:
        out.append(
            "  ".join(str(c).ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]
        )
    return "\n".join(out)


def status_problems(rows_by_host: dict[str, list[dict[str, str]]]) -> list[str]:
    """``host service: STATE detail`` for every row that is not OK."""
    return [
        f"{host} {r['service']}: {r['state']} {r['detail']}"
        for host, rows in rows_by_host.items()
        for r in rows
        if r["state"] != OK
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "status_supervisor_rows": supervisor_rows,
            "status_ray_rows": ray_rows,
            "status_rabbitmq_rows": rabbitmq_rows,
            "status_celery_rows": celery_rows,
            "status_http_row": http_row,
            "status_headroom_rows": headroom_rows,
            "status_model_rows": model_rows,
            "status_table": status_table,
            "status_problems": status_problems,
        }
