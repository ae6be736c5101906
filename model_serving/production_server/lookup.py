"""``owner/name`` -> a dataset row of §1: from the served model's dataset, the cache, or GitHub in few calls.

Why it looks like the collector: the row must be built exactly as training rows were, so a repository gives
the same features at serving as at training (docs/contracts.md §2). The repository JSON goes through
``normalize_item``;
the enrichment columns come from the collector's own code: one GraphQL query per batch of names for commits,
releases and user owners' followers (``data_collection.graphql``), and the collector's one-request REST counts
(``data_collection.enrich.fetch_count``: contributors with ``anon=true``, and everything GraphQL could not
say). ``collected_at`` is the moment of the lookup.

What a looked-up repository costs (GitHub calls), measured through the simulator in
``tests/model_serving/production_server/test_lookup_calls.py``:
- with GraphQL (a token, and an API that has ``/graphql``): ``GET /repos/{name}`` and the contributors count,
  plus a share of one GraphQL query per ``GITHUB_GRAPHQL_BATCH`` names, plus ``GET /users/{login}`` once per
  organization owner per cache lifetime (GraphQL has no organization followers). A name GitHub does not know
  costs only its share of the GraphQL query.
- without GraphQL (no token, or a 404 on ``/graphql``, remembered for ``GRAPHQL_RETRY_SECONDS``): the REST
  path of the collector: the repository, three counts and the owner (cached).

Why answers without GitHub: names in the dataset the served model was trained on (``known.py``) are answered
from it, marked with that dataset's ``collected_at``, unless the caller asks for fresh data; found
repositories are cached ``STARGAZER_LOOKUP_TTL`` seconds, unknown ones ``STARGAZER_LOOKUP_NEGATIVE_TTL``.
Errors (GitHub down, rate limited) are never cached.

Why a call meter: the per-client budget (``budget.py``) is charged with the calls a request really made. The
client reports every call it is charged for (``on_call``); the meter of the request in progress is found
through a context variable, copied into the lookup threads.

Why short timeouts and few retries: a person is waiting; the collector's patient settings (6 tries, sleeping
out a rate-limit reset) would hold a web worker for minutes. A failed lookup is a per-item error, never a
failed request.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from data_collection.client import GitHubClient, GitHubError
from data_collection.enrich import fetch_count
from data_collection.graphql import build_query, parse_answer
from data_collection.normalize import normalize_item
from data_collection.settings import Settings as GitHubSettings
from model_serving.production_server import metrics
from model_serving.production_server.known import KnownRepositories

log = logging.getLogger(__name__)

#: After a 404 on /graphql, REST only for this long before GraphQL is tried again.
GRAPHQL_RETRY_SECONDS: Final = 600.0
#: Upper bounds of the calls one name may cost, used to reserve budget before asking (settled afterwards).
CALLS_WITH_GRAPHQL: Final = 3  # repository, contributors, an organization owner
CALLS_REST_ONLY: Final = 5  # repository, contributors, commits, releases, owner


class RepositoryNotFound(LookupError):
    """GitHub has no such repository (404, or 451 unavailable for legal reasons)."""


class LookupFailed(RuntimeError):
    """GitHub could not be asked (down, timed out, rate limited); one line, no token in it."""


@dataclasses.dataclass(frozen=True)
class Found:
    """A row and where it came from: "dataset" (the served model's), "cache" or "github"."""

    row: dict[str, Any]
    source: str


class CallMeter:
    """GitHub calls charged on behalf of one request (thread-safe: the lookup threads share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def add(self) -> None:
        with self._lock:
            self.calls += 1


_METER: contextvars.ContextVar[CallMeter | None] = contextvars.ContextVar("stargazer_call_meter",
                                                                          default=None)


def _count_call(resource: str) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.add()


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
_OWNER_KEY = "owner:"


@dataclasses.dataclass
class _GraphAnswer:
    """What one GraphQL batch said about one name: its counts and, for a user owner, the followers."""

    counts: dict[str, int | None]
    owner_login: str | None
    user_followers: int | None


class RepositoryLookup:
    """One per web process: clients hold sockets, so it is made after gunicorn forks (``lookup_for``)."""

    def __init__(
        self,
        github: GitHubSettings,
        *,
        ttl: float,
        negative_ttl: float,
        cache_size: int,
        threads: int,
        timeout: float,
        known: KnownRepositories | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Impatient copies of the collector's settings: a person is waiting (see module docstring).
        self.github = github.model_copy(update={
            "connect_timeout": min(github.connect_timeout, timeout),
            "read_timeout": timeout,
            "max_tries": 2,
            "backoff_base": 0.1,
            "backoff_max": 0.5,
            "max_secondary": 1,
            "max_reset_wait": 1.0,
            "user_agent": "stargazer-production-server",
        })
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.cache = TTLCache(cache_size, clock)
        self.threads = threads
        self.known = known
        self._clock = clock
        self._graphql_off_until = 0.0
        self._client: GitHubClient | None = None
        self._client_lock = threading.Lock()

    def client(self) -> GitHubClient:
        with self._client_lock:
            if self._client is None:
                self._client = GitHubClient(self.github, status=lambda msg: log.info("github: %s", msg),
                                            on_call=_count_call, pool_size=max(4, self.threads + 2))
            return self._client

    # -- answers without GitHub ------------------------------------------------------------------------
    def local(self, full_name: str, *, fresh: bool = False) -> Found | RepositoryNotFound | None:
        """The served dataset's row (unless ``fresh``), else the cache's answer, else None (ask GitHub)."""
        if not fresh and self.known is not None:
            row = self.known.get(full_name)
            if row is not None:
                return Found(row, "dataset")
        cached = self.cache.get(full_name.lower())
        if cached is None:
            return None
        if cached == _NOT_FOUND:
            return RepositoryNotFound(f"repository {full_name} not found on GitHub")
        return Found(dict(cached), "cache")

    def needs_github(self, names: Sequence[str], *, fresh: bool = False) -> list[str]:
        """The distinct names (first spelling kept) that no local answer covers."""
        seen: dict[str, str] = {}
        for name in names:
            if name.lower() not in seen and self.local(name, fresh=fresh) is None:
                seen[name.lower()] = name
        return list(seen.values())

    def graphql_usable(self) -> bool:
        """GraphQL needs a token, a positive batch size, and an API that did not answer 404 lately."""
        if self.github.graphql_batch <= 0 or self._clock() < self._graphql_off_until:
            return False
        return any(not token.anonymous for token in self.client().pool.tokens)

    def estimate(self, count: int) -> int:
        """Most GitHub calls ``count`` names can cost (what the budget reserves before asking)."""
        if count <= 0:
            return 0
        if self.graphql_usable():
            return CALLS_WITH_GRAPHQL * count + math.ceil(count / self.github.graphql_batch)
        return CALLS_REST_ONLY * count

    # -- the lookups -----------------------------------------------------------------------------------
    def lookup(self, full_name: str, *, fresh: bool = False) -> dict[str, Any]:
        """The dataset row of one repository; RepositoryNotFound or LookupFailed otherwise."""
        answer = self.lookup_many([full_name], fresh=fresh)[0]
        if isinstance(answer, Exception):
            raise answer
        return answer.row

    def lookup_many(self, names: Sequence[str], *, fresh: bool = False,
                    meter: CallMeter | None = None) -> list[Found | RepositoryNotFound | LookupFailed]:
        """Answers in the order given; local ones first, the rest from GitHub in one batch."""
        answers: dict[str, Found | RepositoryNotFound | LookupFailed] = {}
        for name in names:
            key = name.lower()
            if key in answers:
                continue
            local = self.local(name, fresh=fresh)
            if local is not None:
                metrics.LOOKUPS.labels(outcome=_outcome(local)).inc()
                answers[key] = local
        missing: dict[str, str] = {}
        for name in names:
            if name.lower() not in answers:
                missing.setdefault(name.lower(), name)
        if missing:
            token = _METER.set(meter)
            try:
                answers.update(self._from_github(list(missing.values())))
            finally:
                _METER.reset(token)
        return [_copy(answers[name.lower()]) for name in names]

    # -- GitHub ------------------------------------------------------------------------------------------
    def _from_github(self, names: list[str]) -> dict[str, Found | RepositoryNotFound | LookupFailed]:
        graph: dict[str, _GraphAnswer | None] = {}
        if self.graphql_usable():
            graph = self._graphql(names)
        results: dict[str, Found | RepositoryNotFound | LookupFailed] = {}

        def one(name: str) -> None:
            results[name.lower()] = self._fetch_one(name, graph, name in graph)

        if len(names) == 1:
            one(names[0])
        else:
            with ThreadPoolExecutor(max_workers=min(self.threads, len(names)),
                                    thread_name_prefix="lookup") as pool:
                # Each job runs in a copy of this context: the request's call meter goes along.
                jobs = [pool.submit(contextvars.copy_context().run, one, name) for name in names]
                for job in jobs:
                    job.result()
        return results

    def _graphql(self, names: list[str]) -> dict[str, _GraphAnswer | None]:
        """{name: its counts, or None when GitHub says there is no such repository}; names left out of the
        answer (GraphQL failed for them) take the REST path."""
        out: dict[str, _GraphAnswer | None] = {}
        size = self.github.graphql_batch
        for start in range(0, len(names), size):
            batch = names[start:start + size]
            query, variables = build_query(batch)
            try:
                resp = self.client().graphql(query, variables)
            except GitHubError as exc:
                log.info("GraphQL lookup failed (%s): REST for %d name(s)", exc, len(batch))
                continue
            if resp.status == 404:
                log.info("the API has no GraphQL endpoint: lookups over REST for %.0f s",
                         GRAPHQL_RETRY_SECONDS)
                self._graphql_off_until = self._clock() + GRAPHQL_RETRY_SECONDS
                return out
            if resp.status != 200 or not isinstance(resp.data, dict):
                continue
            repos, followers = parse_answer(batch, resp.data)
            missing = _not_found_aliases(resp.data)
            body = resp.data.get("data") or {}
            for index, name in enumerate(batch):
                if f"r{index}" in missing:
                    out[name] = None
                elif name in repos:
                    node = body.get(f"r{index}") or {}
                    owner = node.get("owner") or {}
                    login = owner.get("login") if isinstance(owner.get("login"), str) else None
                    out[name] = _GraphAnswer(repos[name], login, followers.get(login) if login else None)
        return out

    def _fetch_one(self, name: str, graph: dict[str, _GraphAnswer | None],
                   asked: bool) -> Found | RepositoryNotFound | LookupFailed:
        key = name.lower()
        try:
            if asked and graph.get(name) is None:
                raise RepositoryNotFound(f"repository {name} not found on GitHub")
            row = self._fetch(name, graph.get(name))
        except RepositoryNotFound as exc:
            metrics.LOOKUPS.labels(outcome="not_found").inc()
            self.cache.put(key, _NOT_FOUND, self.negative_ttl)
            return exc
        except GitHubError as exc:
            metrics.LOOKUPS.labels(outcome="error").inc()
            return LookupFailed(f"GitHub lookup of {name} failed: {_reason(exc)}")
        metrics.LOOKUPS.labels(outcome="found").inc()
        self.cache.put(key, row, self.ttl)
        return Found(dict(row), "github")

    def _fetch(self, full_name: str, graph: _GraphAnswer | None) -> dict[str, Any]:
        client = self.client()
        collected_at = datetime.now(UTC)
        resp = client.get(f"/repos/{full_name}", accept=(404, 451))
        if resp.status != 200 or not isinstance(resp.data, dict) or "full_name" not in resp.data:
            raise RepositoryNotFound(f"repository {full_name} not found on GitHub")
        item = resp.data
        row = normalize_item(item, collected_at)
        subscribers = item.get("subscribers_count")
        row["subscribers_count"] = None if subscribers is None else int(subscribers)
        canonical = row["full_name"]
        counts = graph.counts if graph is not None else {}
        for column in ("contributors_count", "commits_count", "releases_count"):
            value = counts.get(column)
            row[column] = value if value is not None else fetch_count(client, canonical, column)
        user_followers = graph.user_followers if graph is not None else None
        row["owner_followers"] = (user_followers if user_followers is not None
                                  else self._owner_followers(row["owner_login"]))
        return row

    def _owner_followers(self, login: str) -> int | None:
        """``/users/{login}`` once per owner per cache lifetime (owners have many repositories)."""
        key = _OWNER_KEY + login.lower()
        cached = self.cache.get(key)
        if cached is not None:
            return cached[0]
        resp = self.client().get(f"/users/{login}", accept=(403, 404, 451))
        known = resp.status == 200 and isinstance(resp.data, dict)
        followers = resp.data.get("followers") if known else None
        value = None if followers is None else int(followers)
        self.cache.put(key, (value,), self.ttl)
        return value


def _not_found_aliases(data: dict[str, Any]) -> set[str]:
    """Aliases GraphQL answered null with a NOT_FOUND error (GitHub has no such repository)."""
    found: set[str] = set()
    for error in data.get("errors") or []:
        path = error.get("path") if isinstance(error, dict) else None
        if error.get("type") == "NOT_FOUND" and isinstance(path, list) and path:
            found.add(str(path[0]))
    return found


def _outcome(answer: Found | RepositoryNotFound) -> str:
    if isinstance(answer, Found):
        return "dataset_hit" if answer.source == "dataset" else "cache_hit"
    return "cache_hit"


def _copy(answer: Found | RepositoryNotFound | LookupFailed) -> Found | RepositoryNotFound | LookupFailed:
    """Each item gets its own row dict (the service adds to rows; the cache must not see it)."""
    return Found(dict(answer.row), answer.source) if isinstance(answer, Found) else answer
