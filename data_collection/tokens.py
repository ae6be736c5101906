"""A pool of GitHub tokens that always hands out the one with the most quota left for a resource.

WHY a pool: one token gives 5,000 core and 30 search requests per hour; a collection of tens of thousands of
repositories needs several, and needs them used evenly so that no single token stalls the run.

Secrecy: a `Token` prints as `token#<position>` everywhere (repr, str, f-strings, logs, exceptions). Its value
is only reachable through `authorization()`, which the HTTP client puts in a request header and nowhere else.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: The resources GitHub meters separately (x-ratelimit-resource).
RESOURCES = ("core", "search", "graphql")


class NoUsableTokenError(RuntimeError):
    """Every configured token was rejected (401): continuing unauthenticated would silently change quotas."""


class Token:
    """One credential. Never formats as its value: only `authorization()` reveals it, for the header."""

    __slots__ = ("__secret", "position")

    def __init__(self, position: int, secret: str | None) -> None:
        self.position = position
        self.__secret = secret

    @property
    def anonymous(self) -> bool:
        return self.__secret is None

    @property
    def label(self) -> str:
        return "anonymous" if self.anonymous else f"token#{self.position}"

    def authorization(self) -> str | None:
        """The `Authorization` header value, or None when unauthenticated."""
        return None if self.__secret is None else f"Bearer {self.__secret}"

    def __repr__(self) -> str:
        return f"<Token {self.label}>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type, tuple[int, None]]:
        # Pickling (multiprocessing, Ray) must not carry the secret along either.
        return (Token, (self.position, None))


@dataclass
class Quota:
    """What GitHub last told us about one token and one resource; None = not known yet."""

    remaining: int | None = None
    limit: int | None = None
    reset: float | None = None


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


class TokenPool:
    """Thread-safe choice of token per resource, fed by the `x-ratelimit-*` headers of every response."""

    def __init__(self, secrets: list[str] | tuple[str, ...], clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        if secrets:
            self._tokens = [Token(i + 1, s) for i, s in enumerate(secrets)]
        else:
            log.warning("no GitHub token configured (GITHUB_TOKENS / GITHUB_TOKENS_FILE): unauthenticated, "
                        "60 core and 10 search requests per hour")
            self._tokens = [Token(0, None)]
        self._alive: dict[int, Token] = {t.position: t for t in self._tokens}
        self._quota: dict[tuple[int, str], Quota] = {}
        self._blocked_until: dict[int, float] = {}

    # -- reading -------------------------------------------------------------------------------------------
    @property
    def tokens(self) -> list[Token]:
        with self._lock:
            return list(self._alive.values())

    def quota(self, token: Token, resource: str) -> Quota:
        with self._lock:
            q = self._quota.get((token.position, resource), Quota())
            return Quota(q.remaining, q.limit, q.reset)

    def summary(self, resource: str = "core") -> str:
        """`token#1=4990 token#2=?` for the progress bar: positions only, never values."""
        with self._lock:
            parts = []
            for t in self._alive.values():
                q = self._quota.get((t.position, resource))
                parts.append(f"{t.label}={'?' if q is None or q.remaining is None else q.remaining}")
            return " ".join(parts)

    # -- choosing ------------------------------------------------------------------------------------------
    def acquire(self, resource: str) -> tuple[Token | None, float]:
        """(token, 0) for the token with the most quota left, or (None, seconds) until the earliest reset.

        The chosen token's remaining count is decremented at once, so concurrent workers spread over tokens
        instead of all picking the same one before its next response arrives.
        """
        with self._lock:
            if not self._alive:
                raise NoUsableTokenError("every GitHub token was rejected (401): check GITHUB_TOKENS")
            now = self._clock()
            best: Token | None = None
            best_left = -1.0
            waits: list[float] = []
            for token in self._alive.values():
                blocked = self._blocked_until.get(token.position, 0.0)
                if blocked > now:
                    waits.append(blocked - now)
                    continue
                q = self._quota.setdefault((token.position, resource), Quota())
                if q.reset is not None and q.reset <= now and q.remaining is not None and q.remaining <= 0:
                    q.remaining = None  # the window has rolled over: optimistic until the next header
                left = math.inf if q.remaining is None else float(q.remaining)
                if left > 0 and left > best_left:
                    best, best_left = token, left
                elif left <= 0:
                    waits.append(max(0.0, (q.reset or now + 1.0) - now))
            if best is not None:
                q = self._quota[(best.position, resource)]
                if q.remaining is not None:
                    q.remaining -= 1
                return best, 0.0
            return None, max(0.0, min(waits)) if waits else 1.0

    # -- learning ------------------------------------------------------------------------------------------
    def update(self, token: Token, resource: str, headers: Mapping[str, str]) -> str:
        """Record `x-ratelimit-*` of a response; returns the resource GitHub says it metered."""
        resource = headers.get("x-ratelimit-resource") or resource
        remaining = _header_int(headers, "x-ratelimit-remaining")
        if remaining is None:
            return resource
        limit = _header_int(headers, "x-ratelimit-limit")
        reset = _header_int(headers, "x-ratelimit-reset")
        with self._lock:
            q = self._quota.setdefault((token.position, resource), Quota())
            if reset is not None and (q.reset is None or reset > q.reset):
                q.remaining, q.reset = remaining, float(reset)  # a new window: the header is the truth
            else:
                # Same window: responses arrive out of order under concurrency; the lowest count is freshest.
                q.remaining = remaining if q.remaining is None else min(q.remaining, remaining)
            q.limit = limit if limit is not None else q.limit
        return resource

    def exhausted(self, token: Token, resource: str, reset: float | None) -> None:
        """A primary limit answer (403/429 with remaining 0): no more of this resource until `reset`."""
        with self._lock:
            q = self._quota.setdefault((token.position, resource), Quota())
            q.remaining = 0
            q.reset = reset if reset is not None else self._clock() + 60.0

    def block(self, token: Token, seconds: float) -> None:
        """A secondary limit: GitHub asks this token (its user) to pause for `seconds`, on every resource."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            self._blocked_until[token.position] = max(self._blocked_until.get(token.position, 0.0), until)

    def drop(self, token: Token) -> None:
        """A 401: the token is revoked or wrong. Say which POSITION it had, never its value."""
        with self._lock:
            if self._alive.pop(token.position, None) is None:
                return
            left = len(self._alive)
        log.warning("GitHub rejected %s (401 Bad credentials): dropped from the pool, %d token(s) left",
                    token.label, left)
