"""The Celery app, wired into Flask exactly as Flask's own Celery example does (``celery_init_app``).

Every task runs inside the Flask app's context, so tasks read the same ``ServingSettings`` the web process
reads (``current_app.config["STARGAZER"]``). Celery's configuration lives under ``app.config["CELERY"]``
and is built by ``settings.celery_config`` from the project's environment variables (DESIGN.md §6), not from
Celery's own names.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    # Worker signal handlers (no request, no task) find the Flask app, and through it the settings, here.
    celery_app.flask_app = app  # type: ignore[attr-defined]
    app.extensions["celery"] = celery_app
    return celery_app
