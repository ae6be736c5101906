"""The Celery app, wired into Flask exactly as Flask's own Celery example does (``celery_init_app``).

Every task runs inside the Flask app's context, so tasks read the same ``ServingSettings`` the web process
reads (``current_app.config["STARGAZER"]``). Celery's configuration lives under ``app.config["CELERY"]``
and is built by ``settings.celery_config`` from the project's environment variables (docs/contracts.md §6),
not from
Celery's own names.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask


def brief_repr(values: Any) -> str:
    """A short description of task arguments for a message's ``argsrepr``/``kwargsrepr`` headers.

    Why: Celery copies a ``saferepr`` of the arguments (up to 1 KB) into every task message, for monitoring
    (``celery inspect``, events). For ``predict_batch`` that is the request's rows a second time: ~0.4 ms of
    the web process's CPU per request (measured, bench/results/serving.md), a message twice the size for
    RabbitMQ and the worker to move, and the client's inputs copied into monitoring output. The shape (how
    many rows) is what an operator needs; the rows themselves are in the prediction log.
    """
    if values is None:
        return "()"
    if isinstance(values, dict):
        return "{" + ", ".join(f"{key!r}: {_brief(value)}" for key, value in values.items()) + "}"
    return "(" + ", ".join(_brief(value) for value in values) + ("," if len(values) == 1 else "") + ")"


def _brief(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"<{len(value)} items>"
    if isinstance(value, dict):
        return f"<{len(value)} keys>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

        def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
            """Celery's apply_async with brief argument headers (see ``brief_repr``)."""
            if options.get("argsrepr") is None:
                options["argsrepr"] = brief_repr(args)
            if options.get("kwargsrepr") is None:
                options["kwargsrepr"] = brief_repr(kwargs or {})
            return super().apply_async(args, kwargs, **options)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    # Worker signal handlers (no request, no task) find the Flask app, and through it the settings, here.
    celery_app.flask_app = app  # type: ignore[attr-defined]
    app.extensions["celery"] = celery_app
    return celery_app
