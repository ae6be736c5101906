"""What the simulator answers: GitHub's REST behaviour, independent of the HTTP plumbing (server.py).

Order of checks for every request, as GitHub applies them:
1. credentials: an unknown or revoked token is a 401 "Bad credentials" (nothing charged);
2. `/rate_limit` answers at once and is never charged;
3. faults: a forced storm or a random 502/503, a slow reply, a secondary limit (403 + `Retry-After`; asking
   again before it is over is refused again);
4. the primary limit of the resource (`search` for search, `core` otherwise): spent -> 403 (or 429) with
   `x-ratelimit-remaining: 0` and the reset second;
5. the answer; a matching `If-None-Match` turns a 200 into a 304 without body that is NOT charged for an
   authenticated caller (GitHub's rule), and charged for an anonymous one.
Every answer carries `x-ratelimit-*`, `x-github-request-id`, `ETag` (of 200s) and a JSON content type.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from data_collection.simulator import render
from data_collection.simulator.config import SimulatorConfig
from data_collection.simulator.graphql import Executor
from data_collection.simulator.model import Repo
from data_collection.simulator.query import QueryError
from data_collection.simulator.ratelimit import Bucket, RateLimiter
from data_collection.simulator.stats import ANONYMOUS, INVALID, Stats
from data_collection.simulator.store import SORTS, RepoStore

DOCS = "https://docs.github.com/rest"
SEARCH_CAP = 1000
LIST_KINDS = ("contributors", "commits", "releases")

TOO_LARGE = ("The history or contributor list is too large to list contributors for this repository via the "
             "API.")
RATE_LIMIT_DOCS = f"{DOCS}/overview/rate-limits-for-the-rest-api"
GRAPHQL_AUTH_DOCS = "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
             "If you reach out to GitHub Support for help, please include the request ID {rid}.")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _error(status: int, message: str, doc: str = DOCS, **extra: Any) -> tuple[int, Any]:
    return status, {"message": message, **extra, "documentation_url": doc, "status": str(status)}


@dataclass
class Call:
    """One request as the handlers see it: what was asked, by whom, its id and its fault draws.

    ``token`` is set once the credentials check passed; ``delay`` once the fault draw chose a slow reply.
    """

    path: str
    query: str
    headers: Mapping[str, str]
    client: str
    base_url: str
    body: bytes
    rid: str
    draws: list[float]
    endpoint: str
    params: dict[str, str]
    token: str | None = None
    delay: float = 0.0

    @property
    def authenticated(self) -> bool:
        return self.token is not None

    @property
    def caller(self) -> str:
        """Whose quota is charged: the token's, or the client address's for an anonymous caller."""
        return self.token if self.token is not None else self.client

    @property
    def label(self) -> str:
        """How the statistics name the caller (a token, or ``anonymous``)."""
        return self.token if self.token is not None else ANONYMOUS

    @property
    def resource(self) -> str:
        """The rate-limit resource charged: ``search``, ``graphql`` or ``core``."""
        return self.endpoint if self.endpoint in ("search", "graphql") else "core"

    @property
    def parts(self) -> list[str]:
        return [p for p in self.path.split("/") if p]


#: An endpoint's answer: status, payload (JSON-able, ready bytes or None) and extra headers.
Answer = tuple[int, Any, dict[str, str]]
Route = Callable[[Call], Answer]


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except (TypeError, ValueError):
        return default


class GitHubApp:
    def __init__(self, store: RepoStore, config: Callable[[], SimulatorConfig], stats: Stats,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._config = config
        self.stats = stats
        self.limits = RateLimiter(config, clock)
        self._lock = threading.Lock()
        self._rng = random.Random(config().seed ^ 0x5EED)
        self._request_counter = 0
        self._forced: list[int] = []  # statuses of the next forced faults (a storm)
        self._forced_secondary = 0
        self.revoked: set[str] = set()
        self._inflight: dict[str, int] = {}
        self._items: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self.extra_tokens: set[str] = set()

    # -- runtime control -------------------------------------------------------------------------------------
    def force_errors(self, count: int, status: int = 502) -> None:
        with self._lock:
            self._forced.extend([status] * count)

    def force_secondary(self, count: int = 1) -> None:
        with self._lock:
            self._forced_secondary += count

    def _next_request_id(self) -> tuple[str, list[float]]:
        """A GitHub-looking request id, and this request's fault draws (fixed order, hence reproducible)."""
        with self._lock:
            self._request_counter += 1
            n = self._request_counter
            draws = [self._rng.random() for _ in range(5)]
        rid = (f"{n & 0xFFFF:04X}:{(n * 7919) & 0xFFFF:04X}:{n * 104729 & 0xFFFFFF:06X}:{n:06X}:"
               f"{0x646B0000 + n:08X}")
        return rid, draws

    # -- the request -----------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, *, query: str, headers: Mapping[str, str], client: str,
               base_url: str, body: bytes = b"") -> Response:
        """Answer one request, slow replies included (a delay is part of the time a request is in flight)."""
        key = headers.get("authorization") or client
        with self._lock:
            self._inflight[key] = in_flight = self._inflight.get(key, 0) + 1
        try:
            limit = self._config().max_concurrent
            rid, draws = self._next_request_id()
            endpoint, route = self._route(method, path)
            call = Call(path=path, query=query, headers=headers, client=client,
                        base_url=base_url, body=body, rid=rid, draws=draws, endpoint=endpoint,
                        params=dict(parse_qsl(query, keep_blank_values=True)))
            resp = self._handle(call, route, too_many=bool(limit) and in_flight > limit)
            if resp.delay:
                time.sleep(resp.delay)
                resp.delay = 0.0
            return resp
        finally:
            with self._lock:
                self._inflight[key] -= 1
                if not self._inflight[key]:
                    del self._inflight[key]

    def _handle(self, call: Call, route: Route, too_many: bool) -> Response:
        """The checks in the module docstring's order; the first that answers ends the request."""
        cfg = self._config()
        if call.endpoint == "graphql" and not cfg.graphql:
            self.stats.record("not_found", ANONYMOUS, 404, None)
            bucket = self.limits.peek(call.client, "core", False)
            return self._finish(call, 404, _error(404, "Not Found")[1], bucket, "core")
        refused = self._authenticate(call, cfg)  # 1.
        if refused is not None:
            return refused
        if call.endpoint == "rate_limit":  # 2.
            payload = self._rate_limit(call.caller, call.authenticated)
            bucket = self.limits.peek(call.caller, "core", call.authenticated)
            self.stats.record(call.endpoint, call.label, 200, None)
            return self._finish(call, 200, payload, bucket, "core")
        faulted = self._fault(call, cfg, too_many)  # 3.
        if faulted is not None:
            return faulted
        if call.endpoint == "graphql":
            return self._graphql(call)
        # 4. primary limit (checked before the answer: a spent quota answers nothing else)
        bucket = self.limits.peek(call.caller, call.resource, call.authenticated)
        if bucket.remaining <= 0:
            return self._exhausted(call, bucket)
        return self._answer(call, route, bucket)  # 5.

    def _authenticate(self, call: Call, cfg: SimulatorConfig) -> Response | None:
        """Sets ``call.token`` from the Authorization header; a 401 for an unknown scheme or token."""
        auth = call.headers.get("authorization") or call.headers.get("Authorization") or ""
        if not auth:
            return None
        scheme, _, value = auth.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("bearer", "token") or not value or not self._known(value, cfg):
            self.stats.record(call.endpoint, INVALID, 401, None)
            return self._finish(call, 401, _error(401, "Bad credentials")[1],
                                self.limits.peek(call.client, "core", False), "core")
        call.token = value
        return None

    def _fault(self, call: Call, cfg: SimulatorConfig, too_many: bool) -> Response | None:
        """A forced or drawn 502/503 or secondary limit; sets ``call.delay`` for a slow reply."""
        with self._lock:
            forced = self._forced.pop(0) if self._forced else None
            forced_secondary = False
            if forced is None and self._forced_secondary > 0:
                self._forced_secondary -= 1
                forced_secondary = True
        status_fault = forced
        if status_fault is None and call.draws[0] < cfg.error_rate_502:
            status_fault = 502
        elif status_fault is None and call.draws[1] < cfg.error_rate_503:
            status_fault = 503
        call.delay = cfg.slow_seconds if call.draws[2] < cfg.slow_rate else 0.0
        if call.delay:
            self.stats.fault("slow")
        if status_fault is not None:
            self.stats.fault(str(status_fault))
            self.stats.record(call.endpoint, call.label, status_fault, None)
            message = "Server Error" if status_fault == 502 else "Service Unavailable"
            bucket = self.limits.peek(call.caller, call.resource, call.authenticated)
            return self._finish(call, status_fault, {"message": message, "documentation_url": DOCS}, bucket,
                                call.resource)
        left = self.limits.secondary_blocked(call.caller)
        if too_many:
            self.stats.fault("concurrency")
        if not (left > 0 or forced_secondary or too_many or call.draws[3] < cfg.secondary_rate):
            return None
        if left > 0:
            self.stats.fault("secondary_violation")
            retry_after = max(1, math.ceil(left))
        else:
            retry_after = cfg.secondary_retry_after
        self.limits.block_secondary(call.caller, retry_after)
        self.stats.fault("secondary")
        self.stats.record(call.endpoint, call.label, cfg.secondary_status, None)
        refusal = _error(cfg.secondary_status, SECONDARY.format(rid=call.rid), RATE_LIMIT_DOCS)[1]
        bucket = self.limits.peek(call.caller, call.resource, call.authenticated)
        return self._finish(call, cfg.secondary_status, refusal, bucket, call.resource,
                            extra={"Retry-After": str(retry_after)})

    def _answer(self, call: Call, route: Route, bucket: Bucket) -> Response:
        """The endpoint's answer, charged; a matching ``If-None-Match`` makes it a 304 (module docstring).

        ``bucket``: the quota as peeked before answering (what an uncharged 304 reports).
        """
        status, payload, extra = route(call)
        body = payload if isinstance(payload, bytes) else (b"" if payload is None else _json(payload))
        if status == 200:
            etag = 'W/"' + hashlib.sha256(body).hexdigest() + '"'
            extra["ETag"] = etag
            if self._etag_matches(call.headers, etag):
                charged = None if call.authenticated else call.resource
                if charged is not None:
                    ok, bucket = self.limits.charge(call.caller, call.resource, call.authenticated)
                    if not ok:
                        return self._exhausted(call, bucket)
                self.stats.record(call.endpoint, call.label, 304, charged)
                return self._finish(call, 304, None, bucket, call.resource, extra=extra)
        ok, bucket = self.limits.charge(call.caller, call.resource, call.authenticated)
        if not ok:  # spent by a concurrent request in the meantime
            return self._exhausted(call, bucket)
        self.stats.record(call.endpoint, call.label, status, call.resource)
        return self._finish(call, status, payload, bucket, call.resource, extra=extra, body=body)

    def _graphql(self, call: Call) -> Response:
        """POST /graphql: points, not requests; a spent quota is a 200 with RATE_LIMITED (GitHub's way)."""
        if not call.authenticated:
            self.stats.record("graphql", call.label, 401, None)
            return self._finish(call, 401, {"message": "This endpoint requires you to be authenticated.",
                                            "documentation_url": GRAPHQL_AUTH_DOCS},
                                self.limits.peek(call.caller, "core", False), "core")
        bucket = self.limits.peek(call.caller, "graphql", True)
        try:
            request = json.loads(call.body or b"null")
        except (ValueError, UnicodeDecodeError):
            request = _BAD_JSON
        if request is _BAD_JSON or not isinstance(request, dict):
            self.stats.record("graphql", call.label, 400, None)
            return self._finish(call, 400, {"message": "Problems parsing JSON", "documentation_url": DOCS},
                                bucket, "graphql")
        if bucket.remaining <= 0:
            self.stats.fault("exhausted")
            self.stats.record("graphql", call.label, 200, None)
            message = f"API rate limit already exceeded for user ID {_user_id(call.caller)}."
            return self._finish(call, 200, {"errors": [{"type": "RATE_LIMITED", "message": message}]},
                                bucket, "graphql")
        payload, cost = self._run_graphql(request, bucket)
        _, bucket = self.limits.charge(call.caller, "graphql", True, cost)
        self.stats.record("graphql", call.label, 200, "graphql")
        return self._finish(call, 200, payload, bucket, "graphql")

    def _run_graphql(self, request: dict[str, Any], bucket: Bucket) -> tuple[dict[str, Any], int]:
        """The query's answer and its cost in points (at least 1, as GitHub charges)."""
        query, variables = request.get("query"), request.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return {"errors": [{"message": "A query attribute must be specified and must be a string."}]}, 1
        executor = Executor(self.store)
        result = executor.run(query, variables)
        cost = max(1, result.cost)
        if "rateLimit" in query:  # shows the state after this query, as GitHub does
            executor.rate = {"limit": bucket.limit, "cost": cost, "used": bucket.used + cost,
                             "remaining": max(0, bucket.remaining - cost),
                             "resetAt": render.iso(bucket.reset)}
            result = executor.run(query, variables)
        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = result.errors
        if result.data is not None:
            payload["data"] = result.data
        return payload, cost

    # -- helpers ---------------------------------------------------------------------------------------------
    def _known(self, token: str, cfg: SimulatorConfig) -> bool:
        return (token in cfg.tokens or token in self.extra_tokens) and token not in self.revoked

    @staticmethod
    def _etag_matches(headers: Mapping[str, str], etag: str) -> bool:
        sent = headers.get("if-none-match") or headers.get("If-None-Match")
        if not sent:
            return False
        if sent.strip() == "*":
            return True
        ours = etag.removeprefix("W/")
        return any(tag.strip().removeprefix("W/") == ours for tag in sent.split(","))

    def _exhausted(self, call: Call, bucket: Bucket) -> Response:
        """The primary limit is spent: 403 (or 429) naming the user, or the address of an anonymous caller."""
        cfg = self._config()
        self.stats.fault("exhausted")
        self.stats.record(call.endpoint, call.label, cfg.exhausted_status, None)
        if call.authenticated:
            who = f"user ID {_user_id(call.caller)}"
            message = (f"API rate limit exceeded for {who}. If you reach out to GitHub Support for help, "
                       f"please include the request ID {call.rid}.")
        else:
            message = (f"API rate limit exceeded for {call.client}. (But here's the good news: Authenticated "
                       "requests get a higher rate limit. Check out the documentation for more details.) "
                       "If you reach out to GitHub Support for help, please include the request ID "
                       f"{call.rid}.")
        spent = Bucket(bucket.limit, bucket.limit, bucket.reset)
        return self._finish(call, cfg.exhausted_status,
                            _error(cfg.exhausted_status, message, RATE_LIMIT_DOCS)[1], spent, call.resource)

    def _finish(self, call: Call, status: int, payload: Any, bucket: Bucket, resource: str, *,
                extra: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        """The response with GitHub's headers, delayed as the request's fault draw says."""
        if body is None:
            body = b"" if payload is None or status in (204, 304) else _json(payload)
        headers = {
            "x-ratelimit-limit": str(bucket.limit),
            "x-ratelimit-remaining": str(bucket.remaining),
            "x-ratelimit-reset": str(bucket.reset),
            "x-ratelimit-used": str(bucket.used),
            "x-ratelimit-resource": resource,
            "x-github-request-id": call.rid,
            "x-github-api-version-selected": "2022-11-28",
            "Cache-Control": "private, max-age=60, s-maxage=60",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "X-GitHub-Media-Type": "github.v3; format=json",
        }
        if status not in (204, 304):
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers.update(extra or {})
        return Response(status=status, body=body, headers=headers, delay=call.delay)

    def _route(self, method: str, path: str) -> tuple[str, Route]:
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            if parts == ["rate_limit"]:
                return "rate_limit", self._not_found
            if parts == ["search", "repositories"]:
                return "search", self._search
            if len(parts) == 3 and parts[0] == "repos":
                return "repo", self._repo
            if len(parts) == 4 and parts[0] == "repos" and parts[3] in LIST_KINDS:
                return parts[3], self._list
            if len(parts) == 2 and parts[0] == "users":
                return "user", self._user
        if method == "POST" and parts == ["graphql"]:
            return "graphql", self._not_found
        return "not_found", self._not_found

    def _not_found(self, call: Call) -> Answer:
        return (*_error(404, "Not Found"), {})

    # -- endpoints -------------------------------------------------------------------------------------------
    def _search(self, call: Call) -> Answer:
        params, base = call.params, call.base_url
        q = params.get("q", "").strip()
        if not q:
            return (*_error(422, "Validation Failed", "https://docs.github.com/v3/search",
                            errors=[{"resource": "Search", "field": "q", "code": "missing"}]), {})
        sort = params.get("sort", "")
        sort = sort if sort in SORTS else "best-match"
        order = "asc" if params.get("order", "desc").lower() == "asc" else "desc"
        per_page = min(100, max(1, _int_param(params, "per_page", 30)))
        page = max(1, _int_param(params, "page", 1))
        try:
            matches = self.store.search(q, sort, order)
        except QueryError as exc:
            return (*_error(422, "Validation Failed", "https://docs.github.com/v3/search",
                            errors=[{"message": str(exc), "resource": "Search", "field": "q",
                                     "code": "invalid"}]), {})
        start = (page - 1) * per_page
        if start >= SEARCH_CAP:
            return (*_error(422, "Only the first 1000 search results are available",
                            "https://docs.github.com/v3/search/"), {})
        reachable = min(len(matches), SEARCH_CAP)
        chosen = matches[start:min(start + per_page, reachable)]
        draw = call.draws[4]
        incomplete = draw < self._config().incomplete_rate and len(chosen) > 1
        if incomplete:
            self.stats.fault("incomplete")
            keep = random.Random(hash((q, page, per_page, draw))).sample(range(len(chosen)),
                                                                         max(1, len(chosen) * 2 // 3))
            chosen = [chosen[i] for i in sorted(keep)]
        # Items are serialized once and reused: a collection reads each repository in several slices.
        payload = b"".join((
            b'{"total_count":', str(len(matches)).encode(), b',"incomplete_results":',
            b"true" if incomplete else b"false", b',"items":[',
            b",".join(self._item_json(r, base) for r in chosen), b"]}",
        ))
        return 200, payload, _link(call, page, per_page, reachable)

    def _item_json(self, repo: Repo, base: str) -> bytes:
        key = (repo.id, base)
        cached = self._items.get(key)
        if cached is None:
            cached = _json(render.search_item(repo, base))
            with self._lock:
                self._items[key] = cached
                if len(self._items) > 50_000:
                    self._items.popitem(last=False)
        return cached

    def _repo(self, call: Call) -> Answer:
        _, owner, name = call.parts
        repo = self.store.repo(f"{owner}/{name}")
        if repo is None:
            return (*_error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository"), {})
        return 200, render.full_repo(repo, call.base_url, call.authenticated), {}

    def _user(self, call: Call) -> Answer:
        login = call.parts[1]
        owner = self.store.owner(login)
        if owner is None:
            return (*_error(404, "Not Found", f"{DOCS}/users/users#get-a-user"), {})
        return 200, render.user(owner, call.base_url), {}

    def _list(self, call: Call) -> Answer:
        params = call.params
        _, owner, name, kind = call.parts
        repo = self.store.repo(f"{owner}/{name}")
        if repo is None:
            return (*_error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository"), {})
        cfg = self._config()
        if kind == "contributors":
            if repo.commits_count >= cfg.contributors_too_large_commits:
                return (*_error(403, TOO_LARGE, f"{DOCS}/repos/repos#list-repository-contributors"), {})
            if repo.empty:
                return 204, None, {}
            anon = params.get("anon", "").lower() in ("1", "true")
            total = repo.contributors_count if anon else render.linked_contributors(repo)
            make = render.contributor
        elif kind == "commits":
            if repo.empty:
                return (*_error(409, "Git Repository is empty.", f"{DOCS}/commits/commits#list-commits"), {})
            total = repo.commits_count
            make = render.commit
        else:
            total = repo.releases_count
            make = render.release
        per_page = min(100, max(1, _int_param(params, "per_page", 30)))
        page = max(1, _int_param(params, "page", 1))
        start = (page - 1) * per_page
        items = [make(repo, i, call.base_url) for i in range(start, min(total, start + per_page))]
        return 200, items, _link(call, page, per_page, total)

    def _rate_limit(self, caller: str, authenticated: bool) -> dict[str, Any]:
        resources = {}
        for resource in ("core", "search", "graphql"):
            if resource == "graphql" and not authenticated:
                resources[resource] = {"limit": 0, "used": 0, "remaining": 0,
                                       "reset": int(time.time()) + 3600}
                continue
            b = self.limits.peek(caller, resource, authenticated)
            resources[resource] = {"limit": b.limit, "used": b.used, "remaining": b.remaining,
                                   "reset": b.reset}
        return {"resources": resources, "rate": dict(resources["core"])}


_BAD_JSON = object()


def _user_id(token: str) -> int:
    """A stable pretend user id for a token (GitHub names the user, never the token, in limit messages)."""
    return 1_000_000 + int(hashlib.sha256(token.encode()).hexdigest()[:8], 16) % 90_000_000


def _link(call: Call, page: int, per_page: int, total: int) -> dict[str, str]:
    """The ``Link`` header of one page of a listing, as extra headers (none when one page holds all)."""
    link = link_header(call.base_url, call.path, call.query, page, per_page, total)
    return {"Link": link} if link else {}


def link_header(base: str, path: str, query: str, page: int, per_page: int, total: int) -> str:
    """GitHub's pagination `Link` (prev, next, last, first in its order); empty when one page holds all."""
    last = max(1, math.ceil(total / per_page))
    if total <= per_page and page == 1:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "page"]

    def url(n: int) -> str:
        return f"<{base}{path}?{urlencode([*pairs, ('page', str(n))])}>"

    links = []
    if page > 1:
        links.append(f'{url(min(page - 1, last))}; rel="prev"')
    if page < last:
        links.append(f'{url(page + 1)}; rel="next"')
        links.append(f'{url(last)}; rel="last"')
    if page > 1:
        links.append(f'{url(1)}; rel="first"')
    return ", ".join(links)
