"""gunicorn's configuration for the stargazer web app (``gunicorn -c gunicorn.conf.py wsgi:app``).

gunicorn reads this file itself, before the app is imported, so the few knobs of the HTTP server live here;
their values come from ``settings.GunicornSettings`` (``STARGAZER_GUNICORN_*``, ``PROMETHEUS_MULTIPROC_DIR``;
README.md's configuration table), with defaults that suit a 2-core host behind nginx.

Why gthread: a request spends its time waiting for a Celery worker's answer, not computing, so threads keep
many requests in flight with little memory, while the processes keep one slow request from stalling all.
"""

from __future__ import annotations

from model_serving.production_server.settings import GunicornSettings, SettingsError

try:
    _settings = GunicornSettings.from_env()
except SettingsError as exc:
    raise SystemExit(str(exc)) from None

bind = [_settings.bind]
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
timeout = _settings.timeout
# SIGTERM lets running requests finish for this long (longer than the app's task timeout of 10 s).
graceful_timeout = 20
# Longer than nginx's upstream keepalive_timeout (30 s): nginx, not gunicorn, closes idle connections, so
# nginx never sends a request on a connection gunicorn has just closed (that race shows up as 502s).
keepalive = 75
# Big request lines/headers are refused early; bodies are limited by nginx and by the app (1 MB).
limit_request_line = 8190
limit_request_fields = 100
# nginx on the same host sets X-Forwarded-*; trust it only from there.
forwarded_allow_ips = _settings.forwarded_allow_ips
proc_name = "stargazer-web"
accesslog = "-"
errorlog = "-"
loglevel = _settings.loglevel
# client, request id from nginx, request line, status, bytes, duration in ms.
access_log_format = '%(h)s %({x-request-id}i)s "%(r)s" %(s)s %(b)s %(M)sms'
# Each worker imports the app after the fork: broker connections and threads must never be shared
# across a fork, which preload_app would risk.
preload_app = False


def on_starting(server: object) -> None:
    """The metrics directory must exist before any worker writes to it."""
    if _settings.metrics_dir is not None:
        _settings.metrics_dir.mkdir(parents=True, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    """A dead worker's live gauges must leave the sum (prometheus_client multiprocess mode)."""
    if _settings.metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
