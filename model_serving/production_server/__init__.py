"""The production server's Flask app (docs/contracts.md §5): form, result page, JSON API, health and metrics.

``create_app`` is the factory (Flask tutorial style): nothing runs at import time. Configuration comes from
``settings.ServingSettings.from_env()`` unless a test passes ``test_config`` (it may hold a ready
``STARGAZER`` settings object and any Flask keys). The Celery app is wired in by ``celery_init_app`` and its
config (``app.config["CELERY"]``) is derived from the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from flask_wtf import CSRFProtect

    from model_serving.production_server import api, errors, models_views, observability, views
    from model_serving.production_server import tasks as _tasks  # noqa: F401  (registers the Celery tasks)
    from model_serving.production_server.celery_app import celery_init_app
    from model_serving.production_server.settings import (
        MAX_BODY_BYTES,
        ServingSettings,
        SettingsError,
        celery_config,
    )

    test_config = dict(test_config or {})
    settings = test_config.pop("STARGAZER", None) or ServingSettings.from_env()
    if not settings.secret_key:  # an empty key signs every session and CSRF token with nothing
        raise SettingsError("no Flask secret key: set STARGAZER_SECRET_KEY (or _FILE), or let the server "
                            "create one in STARGAZER_STATE_DIR")
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session cookie: forms left open still work
        STARGAZER=settings,
        CELERY=celery_config(settings),
    )
    app.config.update(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]  (answers keep the documented key order)

    celery_init_app(app)
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # programs authenticate nothing with cookies: the JSON API needs no CSRF token
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    models_views.init_app(app)
    observability.init_app(app)
    errors.init_app(app)
    return app
