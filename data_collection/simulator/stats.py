"""Counters of what the simulator was asked and answered, for tests and benchmarks to assert on.

WHY: "at most 4 calls per enriched repository" or "a 304 costs nothing" are claims about the server's view;
the client's own count could be wrong in the same way as the client. Tokens are keys here (they are the
simulator's own fake tokens, held in memory only); a wrong token is counted as "<invalid>", never by value.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "<anonymous>"
INVALID = "<invalid>"


@dataclass(frozen=True)
class StatsSnapshot:
    requests: int
    by_endpoint: dict[str, int]
    by_status: dict[int, int]
    by_token: dict[str, int]
    #: token -> resource -> requests charged against its quota
    charged: dict[str, dict[str, int]]
    by_resource: dict[str, int]
    not_modified: int
    #: "502", "503", "slow", "secondary", "incomplete", "exhausted" (primary-limit refusals),
    #: "secondary_violation" (asked again before Retry-After was over)
    faults: dict[str, int]
    #: (endpoint, status) -> n
    by_endpoint_status: dict[str, dict[int, int]] = field(default_factory=dict)

    def calls(self, endpoint: str, status: int | None = None) -> int:
        """Requests received on `endpoint` ("search", "repo", "contributors", ...), of one status if given."""
        if status is None:
            return self.by_endpoint.get(endpoint, 0)
        return self.by_endpoint_status.get(endpoint, {}).get(status, 0)

    def charged_total(self, resource: str | None = None) -> int:
        if resource is None:
            return sum(self.by_resource.values())
        return self.by_resource.get(resource, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_endpoint": self.by_endpoint,
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "by_token_count": len(self.by_token),
            "by_resource": self.by_resource,
            "not_modified": self.not_modified,
            "faults": self.faults,
            "by_endpoint_status": {e: {str(s): n for s, n in d.items()}
                                   for e, d in self.by_endpoint_status.items()},
        }


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self._requests = 0
            self._endpoint: Counter[str] = Counter()
            self._status: Counter[int] = Counter()
            self._token: Counter[str] = Counter()
            self._charged: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._resource: Counter[str] = Counter()
            self._not_modified = 0
            self._faults: Counter[str] = Counter()
            self._endpoint_status: defaultdict[str, Counter[int]] = defaultdict(Counter)

    def record(self, endpoint: str, caller: str, status: int, charged_resource: str | None) -> None:
        with self._lock:
            self._requests += 1
            self._endpoint[endpoint] += 1
            self._status[status] += 1
            self._token[caller] += 1
            self._endpoint_status[endpoint][status] += 1
            if charged_resource is not None:
                self._charged[caller][charged_resource] += 1
                self._resource[charged_resource] += 1
            if status == 304:
                self._not_modified += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                requests=self._requests,
                by_endpoint=dict(self._endpoint),
                by_status=dict(self._status),
                by_token=dict(self._token),
                charged={t: dict(c) for t, c in self._charged.items()},
                by_resource=dict(self._resource),
                not_modified=self._not_modified,
                faults=dict(self._faults),
                by_endpoint_status={e: dict(c) for e, c in self._endpoint_status.items()},
            )
