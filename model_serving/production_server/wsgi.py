"""The WSGI entry point gunicorn imports (``model_serving.production_server.wsgi:app``).

Kept apart from ``__init__.py`` so that importing the package never builds an app: tests build theirs with
``create_app(test_config)``, gunicorn builds exactly one per worker process here.
"""

from __future__ import annotations

from model_serving.production_server import create_app

app = create_app()
