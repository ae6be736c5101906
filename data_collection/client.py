"""The one HTTP client of data_collection: pooled connections, token pool, rate limits, retries, ETag cache.

WHY each piece:
- one `requests.Session` with a sized `HTTPAdapter`: a collection makes ~10^5 requests; reusing TLS
  connections halves their latency, and worker threads share the pool.
- rate limits are waited out, not failed on: the pool knows every token's quota per resource from the
  `x-ratelimit-*` headers; when all are spent we sleep until the earliest reset and say so on the progress
  bar.
- secondary limits (403/429 with `Retry-After`, or GitHub's "secondary rate limit" message) pause that token.
- 5xx, timeouts and dropped connections are retried with exponential backoff and full jitter (tenacity), a
  bounded number of times, then a `GitHubError` with a one-line reason.
- conditional requests: GitHub does not charge a 304 against the quota, so re-reading a resource we have seen
  is free when we send its ETag.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from data_collection.settings import Settings
from data_collection.tokens import Token, TokenPool

log = logging.getLogger(__name__)

#: Statuses that are always an answer, never a reason to retry.
_OK = frozenset({200, 201, 204})


class GitHubError(RuntimeError):
    """A request that cannot succeed (bounded tries spent, or an answer the caller did not accept)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Transient(Exception):
    """Internal: worth another try after a backoff (5xx, timeout, connection reset, truncated body)."""


@dataclass
class ApiResponse:
    status: int
    data: Any
    headers: Mapping[str, str]
    links: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False

    def last_page(self) -> int | None:
        """The page number of the `Link: rel="last"` URL, None when there is a single page."""
        url = self.links.get("last")
        if not url:
            return None
        pages = parse_qs(urlsplit(url).query).get("page")
        return int(pages[0]) if pages else None

    def message(self) -> str:
        if isinstance(self.data, dict):
            return str(self.data.get("message", ""))
        return ""


def resource_for(path: str) -> str:
    """The rate-limit resource a path is metered under (before the response tells us)."""
    if path.startswith("/search/"):
        return "search"
    if path.startswith("/graphql"):
        return "graphql"
    return "core"


def _describe(method: str, path: str, params: Mapping[str, Any] | None) -> str:
    """`GET /search/...?q=...` for messages: paths and queries hold no secrets; headers are never shown."""
    return f"{method} {path}" + (f"?{urlencode(params)}" if params else "")


class GitHubClient:
    """Thread-safe GitHub REST/GraphQL client. Share one instance between worker threads."""

    def __init__(
        self,
        settings: Settings,
        pool: TokenPool | None = None,
        *,
        status: Callable[[str], None] | None = None,
        on_call: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pool_size: int = 16,
        etag_cache_size: int = 4096,
    ) -> None:
        self.settings = settings
        self.pool = pool if pool is not None else TokenPool(list(settings.tokens))
        self._status = status or (lambda msg: log.info("%s", msg))
        self._on_call = on_call
        self._sleep = sleep
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": settings.user_agent,
        })
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.not_modified = 0
        self._etags: OrderedDict[str, tuple[str, ApiResponse]] = OrderedDict()
        self._etag_cache_size = etag_cache_size

    def close(self) -> None:
        self.session.close()

    # -- public --------------------------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None,
            accept: Iterable[int] = ()) -> ApiResponse:
        """GET an API path. Statuses in `accept` (e.g. 404, 409) are returned instead of raised."""
        return self.request("GET", path, params=params, accept=accept)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> ApiResponse:
        return self.request("POST", "/graphql", body={"query": query, "variables": dict(variables or {})},
                            accept=(404,))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Any = None, accept: Iterable[int] = ()) -> ApiResponse:
        accepted = frozenset(accept)
        what = _describe(method, path, params)
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_tries),
            wait=wait_random_exponential(multiplier=self.settings.backoff_base,
                                         max=self.settings.backoff_max),
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=lambda rs: self._status(
                f"retrying {what} after {rs.outcome.exception() if rs.outcome else 'error'}"),
        )
        try:
            return retrying(self._attempt, method, path, params, body, accepted, what)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise GitHubError(f"{what} failed after {self.settings.max_tries} tries: {last}") from None

    # -- one attempt (may wait out rate limits, never counts them as tries) --------------------------------
    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any,
                 accepted: frozenset[int], what: str) -> ApiResponse:
        resource = resource_for(path)
        url = self.settings.api_url + path
        cache_key = url + "?" + urlencode(sorted((params or {}).items())) if method == "GET" else None
        secondary = primary = 0
        while True:
            token = self._acquire(resource)
            headers = {}
            auth = token.authorization()
            if auth:
                headers["Authorization"] = auth
            cached = self._cached(cache_key)
            if cached is not None:
                headers["If-None-Match"] = cached[0]
            try:
                resp = self.session.request(
                    method, url, params=params, json=body, headers=headers,
                    timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                )
            except requests.Timeout:
                raise _Transient(f"timeout talking to {self.settings.api_url}") from None
            except requests.ConnectionError:
                raise _Transient(f"cannot connect to {self.settings.api_url}") from None
            metered = self.pool.update(token, resource, resp.headers)
            if resp.status_code == 304 and cached is not None:
                with self._lock:
                    self.not_modified += 1
                hit = cached[1]
                return ApiResponse(hit.status, hit.data, resp.headers, hit.links, from_cache=True)
            self._count(metered)
            status = resp.status_code
            if status == 401:
                if token.anonymous:
                    raise GitHubError(f"{what}: 401 unauthorized without a token", 401)
                self.pool.drop(token)
                continue
            if status in (403, 429):
                # Ask again under the resource GitHub says it metered (our guess from the path may differ).
                resource = metered
                wait = self._rate_limited(token, resource, resp, secondary)
                if wait is not None:
                    if wait > 0:  # secondary limit: bounded, each pause longer
                        secondary += 1
                    else:  # primary limit: the pool now knows; bounded only against a broken server
                        primary += 1
                    if secondary > self.settings.max_secondary or primary > 10 * self.settings.max_secondary:
                        raise GitHubError(f"{what}: still rate limited after {secondary + primary} refusals",
                                          status)
                    continue
            if status >= 500:
                raise _Transient(f"HTTP {status}")
            data = self._decode(resp)
            result = ApiResponse(status, data, resp.headers, {k: v["url"] for k, v in resp.links.items()})
            if status == 200 and path == "/graphql" and self._graphql_rate_limited(data):
                # GraphQL says "spent" with a 200 and an error of type RATE_LIMITED.
                reset = resp.headers.get("x-ratelimit-reset")
                self.pool.exhausted(token, "graphql", float(reset) if reset and reset.isdigit() else None)
                primary += 1
                if primary > 10 * self.settings.max_secondary:
                    raise GitHubError(f"{what}: still rate limited after {primary} refusals", status)
                continue
            if status in _OK:
                etag = resp.headers.get("ETag")
                if cache_key is not None and etag and status == 200:
                    self._store(cache_key, etag, result)
                return result
            if status in accepted:
                return result
            raise GitHubError(f"{what}: HTTP {status} {result.message()}".rstrip(), status)

    def _acquire(self, resource: str) -> Token:
        while True:
            token, wait = self.pool.acquire(resource)
            if token is not None:
                return token
            if wait > self.settings.max_reset_wait:
                raise GitHubError(f"all tokens spent for {resource}; next reset in {wait:.0f}s is too far")
            self._status(f"all tokens spent for {resource}: sleeping {wait:.1f}s until the reset")
            # +0.5 s: x-ratelimit-reset is whole seconds; waking early would burn an answer on a 403.
            self._sleep(wait + 0.5)

    def _rate_limited(self, token: Token, resource: str, resp: requests.Response,
                      secondary: int) -> float | None:
        """Seconds this token must pause when `resp` is a rate-limit answer; None for an ordinary 403."""
        retry_after = resp.headers.get("Retry-After")
        if retry_after is not None:
            try:
                wait = max(0.0, float(retry_after))
            except ValueError:
                wait = self.settings.secondary_wait
            self.pool.block(token, wait)
            self._status(f"secondary rate limit on {token.label}: pausing it {wait:.1f}s")
            return wait
        if resp.headers.get("x-ratelimit-remaining") == "0":
            reset = resp.headers.get("x-ratelimit-reset")
            self.pool.exhausted(token, resp.headers.get("x-ratelimit-resource") or resource,
                                float(reset) if reset and reset.isdigit() else None)
            return 0.0
        text = resp.text[:500].lower()
        if resp.status_code == 429 or "secondary rate limit" in text or "abuse" in text:
            wait = min(self.settings.secondary_wait * (2 ** secondary), self.settings.max_reset_wait)
            self.pool.block(token, wait)
            self._status(f"secondary rate limit on {token.label}: pausing it {wait:.1f}s")
            return wait
        return None

    @staticmethod
    def _graphql_rate_limited(data: Any) -> bool:
        errors = data.get("errors") if isinstance(data, dict) else None
        return isinstance(errors, list) and any(
            isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors)

    @staticmethod
    def _decode(resp: requests.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except (ValueError, json.JSONDecodeError):
            if resp.status_code < 300:
                raise _Transient("truncated or non-JSON body") from None
            return {"message": resp.text[:200]}

    def _count(self, resource: str) -> None:
        with self._lock:
            self.calls[resource] += 1
        if self._on_call is not None:
            self._on_call(resource)

    def _cached(self, key: str | None) -> tuple[str, ApiResponse] | None:
        if key is None:
            return None
        with self._lock:
            hit = self._etags.get(key)
            if hit is not None:
                self._etags.move_to_end(key)
            return hit

    def _store(self, key: str, etag: str, response: ApiResponse) -> None:
        with self._lock:
            self._etags[key] = (etag, response)
            self._etags.move_to_end(key)
            while len(self._etags) > self._etag_cache_size:
                self._etags.popitem(last=False)
