"""Primary rate limits per caller and resource, in scaled time, as GitHub keeps them.

- A caller is a known token, or (unauthenticated) the client's IP address.
- Each (caller, resource) has a window: it opens with the first charged request and ends `window(resource)`
  real seconds later, rounded UP to a whole epoch second, which is the `x-ratelimit-reset` header. The client
  may sleep until that second and find a fresh quota: the window is over by then.
- Secondary limits: a caller that tripped one is refused until its `Retry-After` has passed (trying again
  early trips it again, as on GitHub), which lets tests prove that the client honours the header.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from data_collection.simulator.config import SimulatorConfig

RESOURCES = ("core", "search", "graphql")


@dataclass
class Bucket:
    limit: int
    used: int
    reset: int  # epoch second the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class RateLimiter:
    def __init__(self, config: Callable[[], SimulatorConfig], clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._secondary_until: dict[str, float] = {}

    def _bucket(self, caller: str, resource: str, authenticated: bool, now: float) -> Bucket:
        cfg = self._config()
        b = self._buckets.get((caller, resource))
        limit = cfg.quota(resource, authenticated)
        if b is None or now >= b.reset:
            b = Bucket(limit=limit, used=0, reset=math.ceil(now + cfg.window(resource)))
            self._buckets[(caller, resource)] = b
        b.limit = limit  # a runtime quota change applies to the current window
        return b

    def peek(self, caller: str, resource: str, authenticated: bool) -> Bucket:
        """The bucket as it stands (a copy), without charging."""
        with self._lock:
            b = self._bucket(caller, resource, authenticated, self._clock())
            return Bucket(b.limit, b.used, b.reset)

    def charge(self, caller: str, resource: str, authenticated: bool, cost: int = 1) -> tuple[bool, Bucket]:
        """Count one request (`cost` points: GraphQL); (False, bucket) when the quota is already spent."""
        with self._lock:
            b = self._bucket(caller, resource, authenticated, self._clock())
            if b.used >= b.limit:
                return False, Bucket(b.limit, b.used, b.reset)
            b.used = min(b.limit, b.used + cost)
            return True, Bucket(b.limit, b.used, b.reset)

    def exhaust(self, caller: str, resource: str = "core", authenticated: bool = True) -> None:
        """Spend the caller's whole quota for the current window (tests: rotation, sleeping until reset)."""
        with self._lock:
            b = self._bucket(caller, resource, authenticated, self._clock())
            b.used = b.limit

    def reset(self, caller: str | None = None) -> None:
        """Forget windows (all, or one caller's): the next request opens a fresh window."""
        with self._lock:
            if caller is None:
                self._buckets.clear()
                self._secondary_until.clear()
            else:
                for key in [k for k in self._buckets if k[0] == caller]:
                    del self._buckets[key]
                self._secondary_until.pop(caller, None)

    # -- secondary limits ------------------------------------------------------------------------------------
    def secondary_blocked(self, caller: str) -> float:
        """Seconds the caller must still wait after a secondary-limit refusal (0 when free)."""
        with self._lock:
            until = self._secondary_until.get(caller, 0.0)
            left = until - self._clock()
            return left if left > 0 else 0.0

    def block_secondary(self, caller: str, seconds: float) -> None:
        with self._lock:
            self._secondary_until[caller] = self._clock() + seconds
