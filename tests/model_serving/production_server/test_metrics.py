"""Metrics add up across processes in multiprocess mode (gunicorn workers + Celery worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask.testing import FlaskClient

from model_serving.production_server import metrics
from tests.support import REPO_ROOT, metric_sample, request_rows

RECORD = """
import sys
from model_serving.production_server import metrics
metrics.REQUESTS.labels(method="POST", endpoint="/api/v1/predict", status="200").inc()
metrics.model_switched(None, "v-old")
if sys.argv[1] == "switch":
    metrics.model_switched("v-old", "v-new")
if sys.argv[1] == "dies":
    import os
    from model_serving.production_server.settings import GunicornSettings
    metrics.mark_process_dead(os.getpid(), GunicornSettings.from_env().metrics_dir)
"""

RENDER = """
from model_serving.production_server import metrics
from model_serving.production_server.settings import GunicornSettings
print(metrics.render(GunicornSettings.from_env().metrics_dir).decode())
"""


def run(code: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout


def test_counters_add_up_and_model_gauge_follows_live_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run(RECORD, env, "stays")   # a process still serving v-old
    run(RECORD, env, "switch")  # a process that moved to v-new
    run(RECORD, env, "dies")    # a process that exited (its live gauges are dropped)
    text = run(RENDER, env)
    assert 'stargazer_http_requests_total{endpoint="/api/v1/predict",method="POST",status="200"} 3.0' in text
    assert 'stargazer_model_info{version="v-new"} 1.0' in text
    assert 'stargazer_model_info{version="v-old"} 1.0' in text  # max over live processes: one still serves it
    gauge_files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("gauge_livemax"))
    assert len(gauge_files) == 2  # the dead process's live gauge file is gone


def test_failed_task_outcomes_are_counted_by_kind(offline_client: FlaskClient) -> None:
    before = metrics.render(None).decode()
    assert offline_client.post("/api/v1/predict", json={"repositories": request_rows(1)}).status_code == 503
    after = metrics.render(None).decode()
    assert (metric_sample(after, "stargazer_task_outcomes_total", outcome="broker_error")
            - metric_sample(before, "stargazer_task_outcomes_total", outcome="broker_error")) == 1
