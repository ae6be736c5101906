"""gunicorn's configuration for the stargazer web app (``gunicorn -c gunicorn.conf.py wsgi:app``).

gunicorn reads this file itself, before the app is imported, so the few knobs of the HTTP server live here
(the app's own settings stay in ``settings.py``). They come from the environment with defaults that suit a
2-core host behind nginx:

    STARGAZER_GUNICORN_BIND      127.0.0.1:8000 (or unix:/path/to.sock)
    STARGAZER_GUNICORN_WORKERS   2   processes
    STARGAZER_GUNICORN_THREADS   8   threads per process
    STARGAZER_GUNICORN_TIMEOUT   30  seconds a worker may be silent before the master restarts it
    PROMETHEUS_MULTIPROC_DIR     where every process writes its metrics (shared with the Celery workers)

Why gthread: a request spends its time waiting for a Celery worker's answer, not computing, so threads keep
many requests in flight with little memory, while the processes keep one slow request from stalling all.
"""

from __future__ import annotations

import os
from pathlib import Path


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be >= {minimum}, got {value}")
    return value


bind = [os.environ.get("STARGAZER_GUNICORN_BIND", "127.0.0.1:8000")]
workers = _int("STARGAZER_GUNICORN_WORKERS", 2)
threads = _int("STARGAZER_GUNICORN_THREADS", 8)
worker_class = "gthread"
timeout = _int("STARGAZER_GUNICORN_TIMEOUT", 30)
# SIGTERM lets running requests finish for this long (longer than the app's task timeout of 10 s).
graceful_timeout = 20
# Longer than nginx's upstream keepalive_timeout (30 s): nginx, not gunicorn, closes idle connections, so
# nginx never sends a request on a connection gunicorn has just closed (that race shows up as 502s).
keepalive = 75
# Big request lines/headers are refused early; bodies are limited by nginx and by the app (1 MB).
limit_request_line = 8190
limit_request_fields = 100
# nginx on the same host sets X-Forwarded-*; trust it only from there.
forwarded_allow_ips = os.environ.get("STARGAZER_FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "stargazer-web"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("STARGAZER_GUNICORN_LOGLEVEL", "info")
# client, request id from nginx, request line, status, bytes, duration in ms.
access_log_format = '%(h)s %({x-request-id}i)s "%(r)s" %(s)s %(b)s %(M)sms'
# Each worker imports the app after the fork: broker connections and threads must never be shared
# across a fork, which preload_app would risk.
preload_app = False


def on_starting(server: object) -> None:
    """The metrics directory must exist before any worker writes to it."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    """A dead worker's live gauges must leave the sum (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
