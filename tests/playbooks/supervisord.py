"""Ending the supervisord a converge started on a namespace host, by the PID in its pidfile."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
