"""The progress bar of a collection: repositories done, quota left per token (by position), and waits.

WHY its own module: the client, the search walk and the enrichment workers all report into it from several
threads; one lock and one place decide what the operator sees. Status lines (rate-limit sleeps, retries) also
go to the log, so a run without a terminal (CI, nohup) still says why it is waiting.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tqdm import tqdm

from data_collection.tokens import TokenPool

log = logging.getLogger("data_collection")


class Progress:
    def __init__(self, pool: TokenPool, *, enabled: bool | None = None) -> None:
        self._pool = pool
        self._enabled = enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._resource = "core"
        self._name = ""

    def phase(self, name: str, total: int | None, resource: str = "core") -> None:
        """Start a new bar (search, then enrichment)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            self._resource = resource
            self._name = name
            # disable=None: no bar when stderr is not a terminal (logs carry the status lines instead).
            self._bar = tqdm(total=total, desc=name, unit="repo", dynamic_ncols=True,
                             disable=False if self._enabled else None if self._enabled is None else True)
        log.info("%s: started", name)

    def update(self, done: int) -> None:
        with self._lock:
            if self._bar is None:
                return
            self._bar.set_description_str(self._name, refresh=False)
            self._bar.set_postfix_str(f"{self._resource} quota {self._pool.summary(self._resource)}",
                                      refresh=False)
            # update() redraws at most every `mininterval`: thousands of updates stay cheap.
            self._bar.update(done - self._bar.n)

    def status(self, message: str) -> None:
        """A wait or retry: shown on the bar and logged. Messages name tokens by position only."""
        log.info("%s", message)
        with self._lock:
            if self._bar is not None:
                self._bar.set_description_str(message[:70])

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
