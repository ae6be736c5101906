"""The ``rpc://`` result backend, with its reply-queue declaration bounded like publishing is.

Why: Celery's ``RPCBackend.on_task_call`` declares the caller's reply queue with ``retry=True`` and NO retry
limit, so while RabbitMQ is down every web request would hang forever inside ``apply_async`` (seen in the
broker-restart test). Here the declaration uses the same short policy as publishing
(``task_publish_retry_policy``), so a request without a broker fails fast with a 503 and the next one, once
the broker is back, reconnects. Everything else is Celery's backend unchanged.
"""

from __future__ import annotations

from typing import Any

from celery._state import task_join_will_block
from celery.backends.rpc import RPCBackend
from kombu.common import maybe_declare

#: The ``result_backend`` value that selects this class (Celery imports ``module:Class`` paths).
BACKEND_PATH = "model_serving.production_server.rpc_backend:BoundedRPCBackend"


class BoundedRPCBackend(RPCBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        if not task_join_will_block():
            policy = dict(self.app.conf.task_publish_retry_policy or {})
            maybe_declare(self.binding(producer.channel), retry=True, **policy)
