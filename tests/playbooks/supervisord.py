"""Ending the supervisord a converge started on a namespace host, by the PID in its pidfile."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support import poll_until


def stop_supervisord(pidfile: Path, timeout: float = 60) -> None:
    """supervisord stops its programs (nginx, gunicorn, Celery, RabbitMQ) on SIGTERM; wait for it to exit."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    poll_until(lambda: not _alive(pid), timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
