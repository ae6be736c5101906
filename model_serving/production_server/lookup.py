"""``owner/name`` -> a dataset row of §1, through data_collection's GitHub client, cached with a TTL.

Why it looks like the collector: the row must be built exactly as training rows were (``normalize_item`` for
the repository JSON, the same one-request counts for the enrichment columns), so a repository gives the same
features at serving as at training (DESIGN §2). ``collected_at`` is the moment of the lookup.

Why a cache: people compare the same famous repositories again and again, and GitHub's quota is 5,000 calls an
hour per token. Found repositories are kept ``STARGAZER_LOOKUP_TTL`` seconds, unknown ones a shorter
``STARGAZER_LOOKUP_NEGATIVE_TTL`` (a repository may be created meanwhile). Errors (GitHub down, rate limited)
are never cached.

Why short timeouts and few retries: a person is waiting; the collector's patient settings (6 tries, sleeping
out a rate-limit reset) would hold a web worker for minutes. A failed lookup is a per-item error, never a
failed request.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from data_collection.client import GitHubClient, GitHubError
from data_collection.enrich import count_from
from data_collection.normalize import normalize_item
from data_collection.settings import Settings as GitHubSettings
from model_serving.production_server import metrics

log = logging.getLogger(__name__)


class RepositoryNotFound(LookupError):
    """GitHub has no such repository (404, or 451 unavailable for legal reasons)."""


class LookupFailed(RuntimeError):
    """GitHub could not be asked (down, timed out, rate limited); one line, no token in it."""


class TTLCache:
    """A small thread-safe LRU with per-entry expiry (the web process's threads share it)."""

    def __init__(self, maxsize: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.maxsize = maxsize
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


_RATE_LIMITED = re.compile(r"all tokens spent for \w+; next reset in (\d+)s")


def _reason(exc: GitHubError) -> str:
    """The client's reason, said for a person: its rate-limit wording speaks of tokens and seconds."""
    spent = _RATE_LIMITED.match(str(exc))
    if spent:
        minutes = max(1, round(int(spent.group(1)) / 60))
        return (f"GitHub's API rate limit is used up (it resets in about {minutes} min): "
                "try again later, or describe the repository by hand")
    return str(exc)


_NOT_FOUND = "not-found"
_COUNT_PATHS = {
    "contributors_count": "contributors",
    "commits_count": "commits",
    "releases_count": "releases",
}


class RepositoryLookup:
    """One per web process (clients hold sockets: created after gunicorn forks, see ``for_process``)."""

    def __init__(
        self,
        github: GitHubSettings,
        *,
        ttl: float,
        negative_ttl: float,
        cache_size: int,
        threads: int,
        timeout: float,
    ) -> None:
        # Impatient copies of the collector's settings: a person is waiting (see module docstring).
        self.github = dataclasses.replace(
            github,
            connect_timeout=min(github.connect_timeout, timeout),
            read_timeout=timeout,
            max_tries=2,
            backoff_base=0.1,
            backoff_max=0.5,
            max_secondary=1,
            max_reset_wait=1.0,
            user_agent="stargazer-production-server",
        )
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.cache = TTLCache(cache_size)
        self.threads = threads
        self._client: GitHubClient | None = None
        self._client_lock = threading.Lock()

    def client(self) -> GitHubClient:
        with self._client_lock:
            if self._client is None:
                self._client = GitHubClient(self.github, status=lambda msg: log.info("github: %s", msg))
            return self._client

    def lookup(self, full_name: str) -> dict[str, Any]:
        """The dataset row of one repository; RepositoryNotFound or LookupFailed otherwise."""
        key = full_name.lower()
        cached = self.cache.get(key)
        if cached is not None:
            metrics.LOOKUPS.labels(outcome="cache_hit").inc()
            if cached == _NOT_FOUND:
                raise RepositoryNotFound(f"repository {full_name} not found on GitHub")
            return dict(cached)
        try:
            row = self._fetch(full_name)
        except RepositoryNotFound:
            metrics.LOOKUPS.labels(outcome="not_found").inc()
            self.cache.put(key, _NOT_FOUND, self.negative_ttl)
            raise
        except GitHubError as exc:
            metrics.LOOKUPS.labels(outcome="error").inc()
            raise LookupFailed(f"GitHub lookup of {full_name} failed: {_reason(exc)}") from None
        metrics.LOOKUPS.labels(outcome="found").inc()
        self.cache.put(key, row, self.ttl)
        return dict(row)

    def lookup_many(self, names: Sequence[str]) -> list[dict[str, Any] | Exception]:
        """Rows (or the exception for that name) in the order given; distinct names fetched in parallel."""
        distinct = list(dict.fromkeys(names))
        results: dict[str, dict[str, Any] | Exception] = {}

        def one(name: str) -> None:
            try:
                results[name] = self.lookup(name)
            except (RepositoryNotFound, LookupFailed) as exc:
                results[name] = exc

        if len(distinct) == 1:
            one(distinct[0])
        else:
            with ThreadPoolExecutor(max_workers=min(self.threads, len(distinct)),
                                    thread_name_prefix="lookup") as pool:
                list(pool.map(one, distinct))
        return [results[name] for name in names]

    def _fetch(self, full_name: str) -> dict[str, Any]:
        client = self.client()
        collected_at = datetime.now(UTC)
        resp = client.get(f"/repos/{full_name}", accept=(404, 451))
        if resp.status != 200 or not isinstance(resp.data, dict) or "full_name" not in resp.data:
            raise RepositoryNotFound(f"repository {full_name} not found on GitHub")
        item = resp.data
        row = normalize_item(item, collected_at)
        # The enrichment columns, counted exactly as the collector counts them (data_collection.enrich).
        subscribers = item.get("subscribers_count")
        row["subscribers_count"] = None if subscribers is None else int(subscribers)
        canonical = row["full_name"]
        for column, path in _COUNT_PATHS.items():
            counted = client.get(f"/repos/{canonical}/{path}", {"per_page": 1},
                                 accept=(403, 404, 409, 422, 451))
            row[column] = count_from(counted)
        owner = client.get(f"/users/{row['owner_login']}", accept=(403, 404, 451))
        known = owner.status == 200 and isinstance(owner.data, dict)
        followers = owner.data.get("followers") if known else None
        row["owner_followers"] = None if followers is None else int(followers)
        return row
