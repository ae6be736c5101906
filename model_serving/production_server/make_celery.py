"""Worker entry point: ``celery -A model_serving.production_server.make_celery worker``.

Importing it builds the Flask app (and so the Celery app and its tasks) from the environment; the worker
signal handlers in ``tasks`` load the model once per worker process.
"""

from __future__ import annotations

from model_serving.production_server import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
