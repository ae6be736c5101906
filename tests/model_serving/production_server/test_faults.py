"""Faults with real processes: a worker SIGKILLed holding a task, a pool process killed inside one, RabbitMQ
restarted, no / corrupt model, a model load stuck past the soft time limit, and a new model switched in while
requests run. Each test starts its own worker(s); the app runs in the test
process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from model_serving import artifact, releases
from model_serving.process_stack.services import RabbitMQ
from tests.support import (
    DEPLOY_KEYS,
    READYZ_DETAIL,
    AppFactory,
    Models,
    WorkerFactory,
    gated_load_version,
    inspect_worker,
    install,
    one_reply,
    queue_counts,
    request_rows,
    switch_current,
    wait_until,
    worker_hostname,
)

pytestmark = pytest.mark.integration


def test_worker_killed_holding_a_task_the_task_is_redelivered_and_answered(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    model_dir = tmp_path / "production"
    version = install(model_dir, signed_models.v1)
    queue = "kill-test"
    first = start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue)
    app = make_app(rabbitmq.url, model_dir, queue=queue, task_timeout=60.0)
    client = app.test_client()
    assert client.post("/api/v1/predict", json={"repositories": request_rows(1)}).status_code == 200
    assert first.pid is not None
    pgid = first.pid  # the worker runs in its own session: its pool processes share this group
    os.killpg(pgid, signal.SIGSTOP)  # frozen: it will receive the next task and never acknowledge it
    answers: list[object] = []
    request = threading.Thread(target=lambda: answers.append(
        client.post("/api/v1/predict", json={"repositories": request_rows(5)})))
    request.start()
    try:
        wait_until(lambda: queue_counts(rabbitmq, queue)[1] == 1, 60,
                   "the task delivered to the frozen worker")
        second = start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue)
        assert not answers, "the task must not be answered while its worker holds it"
        os.killpg(pgid, signal.SIGKILL)  # the worker dies without acknowledging: acks_late gives it back
    finally:
        with contextlib.suppress(ProcessLookupError):  # never leave a frozen process behind
            os.killpg(pgid, signal.SIGCONT)
    request.join(60)
    assert answers, "no answer after the worker was killed"
    answer = answers[0]
    assert answer.status_code == 200, answer.json  # type: ignore[attr-defined]
    assert answer.json["model_version"] == version  # type: ignore[attr-defined]
    assert len(answer.json["predictions"]) == 5  # type: ignore[attr-defined]
    # The second worker answered it (it logs the success just after sending the result).
    wait_until(lambda: "Task stargazer.predict_batch[" in second.log_file.read_text()
               and "succeeded" in second.log_file.read_text(), 60, "the second worker's log of the task")


def test_rabbitmq_restart_the_app_recovers_without_restart(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    model_dir = tmp_path / "production"
    version = install(model_dir, signed_models.v1)
    queue = "restart-test"
    start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue)
    app = make_app(rabbitmq.url, model_dir, queue=queue, task_timeout=5.0)
    client = app.test_client()
    body = {"repositories": request_rows(3)}
    assert client.post("/api/v1/predict", json=body).status_code == 200
    rabbitmq.stop()
    try:
        down = client.post("/api/v1/predict", json=body)
        assert down.status_code == 503
        assert down.json["error"].startswith("message broker")
        assert client.get("/readyz", headers=READYZ_DETAIL).status_code == 503
    finally:
        rabbitmq.start()  # same node, ports, data and credentials
        rabbitmq.wait_ready(60)
    outage_over = time.monotonic()
    statuses: list[int] = []

    def recovered() -> bool:
        answer = client.post("/api/v1/predict", json=body)
        statuses.append(answer.status_code)
        return answer.status_code == 200 and answer.json["model_version"] == version

    # The worker reconnects with kombu's backoff (2, 4, 6 ... s, at most 30 s between tries).
    wait_until(recovered, 60, "a prediction after the broker came back", interval=0.5)
    assert set(statuses) <= {200, 503, 504}, statuses
    print(f"recovered {time.monotonic() - outage_over:.1f} s after the broker was back; statuses {statuses}")
    assert client.get("/readyz", headers=READYZ_DETAIL).json["ready"] is True
    # Several in a row: the recovered connection is a healthy one, not a lucky one.
    assert all(client.post("/api/v1/predict", json=body).status_code == 200 for _ in range(5))


def test_no_model_then_corrupt_model_then_a_good_one_without_restarting_the_worker(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    model_dir = tmp_path / "production"
    queue = "model-states"
    start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue)
    client = make_app(rabbitmq.url, model_dir, queue=queue).test_client()
    body = {"repositories": request_rows(2)}

    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 503 and ready.json["ready"] is False and ready.json["broker"] is True
    assert ready.json["error"] == f"no model installed: {model_dir / 'current'} does not exist"
    assert client.get("/readyz").json == {"ready": False, "reason": "no model loaded: no model installed yet"}
    answer = client.post("/api/v1/predict", json=body)
    assert answer.status_code == 503
    # The API's 503 says why in words anyone may read: never the model directory.
    assert answer.json == {"error": "no model installed yet", "details": {"code": "no_model"}}

    # A release whose bytes do not match the signed manifest (a truncated copy, a bit flip on disk).
    corrupt = tmp_path / "corrupt"
    shutil.copytree(signed_models.v1, corrupt)
    releases.install_release(corrupt, model_dir, actor="tests", move=True)
    (model_dir / "current" / artifact.MODEL_FILE).write_bytes(b"\x80\x04 truncated")
    answer = client.post("/api/v1/predict", json=body)
    assert answer.status_code == 503
    assert answer.json["error"] == "the installed model release was refused (see the worker's log)"
    assert str(tmp_path) not in answer.get_data(as_text=True)
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 503 and "does not match model.json" in ready.json["error"]
    assert str(model_dir) in ready.json["error"]  # the detail names the path, for the operator
    public = client.get("/readyz")
    assert public.status_code == 503 and set(public.json) == {"ready", "reason"}
    assert str(tmp_path) not in public.get_data(as_text=True)

    version = install(model_dir, signed_models.v2)
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 200 and ready.json["model_version"] == version
    assert client.post("/api/v1/predict", json=body).json["model_version"] == version


def test_new_model_switched_in_while_requests_run_no_request_fails(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    model_dir = tmp_path / "production"
    old = install(model_dir, signed_models.v1)
    queue = "switch-test"
    start_worker(rabbitmq.url, model_dir, concurrency=2, STARGAZER_QUEUE=queue)
    app = make_app(rabbitmq.url, model_dir, queue=queue)
    seen: list[tuple[float, int, str | None]] = []  # (when the request started, status, version)
    stop_at = time.monotonic() + 60
    switched = threading.Event()
    lock = threading.Lock()

    def hammer() -> None:
        client = app.test_client()
        body = {"repositories": request_rows(5)}
        after_switch = 0
        while time.monotonic() < stop_at and after_switch < 8:
            started = time.monotonic()
            answer = client.post("/api/v1/predict", json=body)
            version = answer.json.get("model_version") if answer.status_code == 200 else None
            with lock:
                seen.append((started, answer.status_code, version))
            if switched.is_set():
                after_switch += 1

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(hammer) for _ in range(3)]
        wait_until(lambda: len(seen) >= 10, 30, "requests served by the old model")
        new = install(model_dir, signed_models.v2)
        switched_at = time.monotonic()
        switched.set()
        for future in futures:
            future.result()

    statuses = {status for _, status, _ in seen}
    assert statuses == {200}, f"failed requests during the switch: {sorted(statuses)}"
    versions = [version for _, _, version in sorted(seen)]
    assert versions[0] == old and versions[-1] == new
    # A request sent after the switch is answered by the new model: the worker process checks `current`
    # when it starts the task, not when it received the message.
    late = [version for started, _, version in seen if started > switched_at]
    assert len(late) >= 20 and set(late) == {new}
    ready = app.test_client().get("/readyz", headers=READYZ_DETAIL)
    assert ready.json["model_version"] == new


def test_a_model_load_cut_short_by_the_soft_time_limit_is_retried_and_served_without_restart(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    model_dir = tmp_path / "production"
    old = install(model_dir, signed_models.v1)
    queue = "slow-reload"
    # A soft limit a tiny model's load never comes near (even on a busy machine), but a blocked load does.
    worker = start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue,
                          STARGAZER_TASK_SOFT_TIME_LIMIT="4", STARGAZER_TASK_HARD_TIME_LIMIT="30")
    client = make_app(rabbitmq.url, model_dir, queue=queue, task_timeout=25.0,
                      ready_timeout=20.0).test_client()
    body = {"repositories": request_rows(2)}
    assert client.post("/api/v1/predict", json=body).json["model_version"] == old
    pool_pid = client.get("/readyz", headers=READYZ_DETAIL).json["worker"]["pid"]

    # While the gate exists, unpickling this (sound, signed) release blocks for ten minutes, as a big model
    # on a slow disk might: every load the worker tries is cut short by the task's soft time limit.
    gate = tmp_path / "slow-disk"
    gate.touch()
    new = install(model_dir, gated_load_version(tmp_path / "slow", DEPLOY_KEYS.signing, gate, seconds=600))
    answer = client.post("/api/v1/predict", json=body)
    assert answer.status_code == 200 and answer.json["model_version"] == old  # answered, by the old model
    worker_log = worker.log_file.read_text(errors="replace")
    assert "was interrupted by the task's soft time limit (attempt 1); retrying in 1 s" in worker_log
    assert f"still serving {old}" in worker_log

    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 200 and ready.json["model_version"] == old
    assert "interrupted by the task's soft time limit" in ready.json["error"]
    assert ready.json["worker"]["retry_in"] is not None
    public = client.get("/readyz")
    assert public.json == {"ready": True, "reason": (
        "a worker answered with a loaded model; the newest release is not served: "
        "loading the installed model release was interrupted; it is retried")}

    # The disk is quick again: the worker serves the new release on its own, no restart, no new switch.
    gate.unlink()

    def serves_new() -> bool:
        answer = client.post("/api/v1/predict", json=body)
        return answer.status_code == 200 and answer.json["model_version"] == new

    wait_until(serves_new, 90, "the new model after the interrupted loads were retried", interval=0.5)
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert ready.status_code == 200 and ready.json["model_version"] == new and "error" not in ready.json
    assert ready.json["worker"]["pid"] == pool_pid  # the same worker process: nothing was restarted
    assert client.get("/readyz").json == {"ready": True, "reason": "a worker answered with a loaded model"}


def test_a_pool_process_killed_inside_a_task_gives_it_back_and_the_request_is_answered(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    """The worker's master survives, its pool process dies while running a task: reject_on_worker_lost
    requeues the message, and the replacement process answers it. (Without it Celery acknowledges the task
    and stores WorkerLostError: that request would fail with a 500.)

    To kill the process provably *inside* the task, the task is made to block: ``current`` is switched to a
    release whose model.json is a named pipe, so the task's model check blocks reading it.
    """
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    queue = "worker-lost"
    worker = start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue)
    # The blocked task must still be blocked when it is killed: the default 8 s soft limit (carried in the
    # message) could end it first on a loaded machine, turning the redelivery into a 504.
    app = make_app(rabbitmq.url, model_dir, queue=queue, task_timeout=60.0, task_soft_time_limit=50.0,
                   task_hard_time_limit=55.0)
    client = app.test_client()
    assert client.post("/api/v1/predict", json={"repositories": request_rows(1)}).status_code == 200
    inspect = inspect_worker(app, worker)
    hostname = worker_hostname(worker)
    (child,) = one_reply(inspect.stats())["pool"]["processes"]

    hanging = model_dir / "releases" / "zz-hanging"
    hanging.mkdir()
    shutil.copy2(signed_models.v2 / artifact.MODEL_FILE, hanging / artifact.MODEL_FILE)
    os.mkfifo(hanging / artifact.MANIFEST_FILE)  # reading it blocks until someone writes: nobody will
    switch_current(model_dir, hanging)

    answers: list[Any] = []
    request = threading.Thread(target=lambda: answers.append(
        client.post("/api/v1/predict", json={"repositories": request_rows(5)})))
    request.start()
    try:
        running = wait_until(lambda: (inspect.active() or {}).get(hostname), 60,
                             "the task running in the pool process")
        assert [t["worker_pid"] for t in running] == [child]  # accepted: the process is inside the task
        task_id = running[0]["id"]
        new = install(model_dir, signed_models.v2)  # what the replacement process will load
        os.kill(child, signal.SIGKILL)
        request.join(60)
    finally:
        with contextlib.suppress(OSError):  # never leave the test's thread waiting on the pipe
            fd = os.open(hanging / artifact.MANIFEST_FILE, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
    assert answers, "no answer after the pool process was killed"
    answer = answers[0]
    assert answer.status_code == 200, answer.json
    assert answer.json["model_version"] == new and len(answer.json["predictions"]) == 5
    # The worker logs the success just after sending the result: wait for the line, then read the story.
    wait_until(lambda: f"Task stargazer.predict_batch[{task_id}] succeeded" in worker.log_file.read_text(
        errors="replace"), 60, "the worker's log of the redelivered task")
    log = worker.log_file.read_text(errors="replace")
    assert "exited with 'signal 9 (SIGKILL)'" in log
    assert log.count(f"Task stargazer.predict_batch[{task_id}] received") == 2, "redelivered once"


def test_a_model_check_stuck_past_the_soft_time_limit_is_answered_by_the_old_model(
    tmp_path: Path, signed_models: Models, rabbitmq: RabbitMQ, start_worker: WorkerFactory,
    make_app: AppFactory,
) -> None:
    """The soft limit from the environment (1 s here) ends a task stuck reading a new release: the person gets
    the old model's answer (not a 500, not a 504 after the web's 20 s), the release is retried later instead
    of being condemned, and the same worker process serves the next release (no restart)."""
    model_dir = tmp_path / "production"
    install(model_dir, signed_models.v1)
    queue = "stuck-check"
    start_worker(rabbitmq.url, model_dir, STARGAZER_QUEUE=queue, STARGAZER_TASK_SOFT_TIME_LIMIT="1",
                 STARGAZER_TASK_HARD_TIME_LIMIT="3")
    # Celery puts the PUBLISHER's limits in each message and the worker obeys the message: the web's settings
    # (the same environment variables, in production the same environment) are the ones that count.
    client = make_app(rabbitmq.url, model_dir, queue=queue, task_timeout=20.0, task_soft_time_limit=1.0,
                      task_hard_time_limit=3.0).test_client()
    body = {"repositories": request_rows(2)}
    first = client.post("/api/v1/predict", json=body)
    assert first.status_code == 200
    served_by = first.json["model_version"]

    hanging = model_dir / "releases" / "zz-hanging"
    hanging.mkdir()
    shutil.copy2(signed_models.v2 / artifact.MODEL_FILE, hanging / artifact.MODEL_FILE)
    os.mkfifo(hanging / artifact.MANIFEST_FILE)  # the task's model check blocks: a stuck load
    switch_current(model_dir, hanging)
    started = time.monotonic()
    stuck = client.post("/api/v1/predict", json=body)
    waited = time.monotonic() - started
    assert stuck.status_code == 200 and stuck.json["model_version"] == served_by, stuck.json
    assert 0.9 < waited < 3.5, waited  # the soft limit, not the web's 20 s wait
    ready = client.get("/readyz", headers=READYZ_DETAIL)
    assert "interrupted by the task's soft time limit" in ready.json["error"]

    # A sound release: its load (and the compile that verifies it) may itself take longer than this 1 s limit
    # on a busy machine; then it is retried outside tasks, and served without a restart either way.
    new = install(model_dir, signed_models.v2)

    def serves_new() -> bool:
        after = client.post("/api/v1/predict", json=body)
        return after.status_code == 200 and after.json["model_version"] == new != served_by

    wait_until(serves_new, 60, "the new release served after the stuck one", interval=0.5)
