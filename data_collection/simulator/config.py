"""Every knob of the simulator in one dataclass, shared by the CLI, the in-process API and runtime changes.

WHY one object: tests change faults at runtime (`sim.configure(error_rate_502=0.1)`); the server reads the
current config on every request, so a change applies to the next request without a restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

#: GitHub's windows (seconds): core and graphql are hourly, search is per minute.
GITHUB_WINDOWS = {"core": 3600.0, "search": 60.0, "graphql": 3600.0}

#: The moment the generated world is a snapshot of. Fixed (not "now") so a seed always gives the same data.
DEFAULT_SNAPSHOT = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class SimulatorConfig:
    # -- data ------------------------------------------------------------------------------------------------
    repos: int = 5000
    seed: int = 0
    min_stars: int = 50
    #: Tail exponent of the star distribution, P(stars >= s) = (s / min_stars) ** -alpha (GitHub: about 1).
    star_alpha: float = 1.1
    snapshot: datetime = DEFAULT_SNAPSHOT
    #: Real search API JSON pages to serve instead of generated repositories.
    pages: tuple[str, ...] = ()
    #: Repositories with at least this many commits answer 403 "too large" on /contributors (as GitHub does
    #: for its largest histories).
    contributors_too_large_commits: int = 50_000

    # -- auth and primary rate limits -----------------------------------------------------------------------
    #: Known tokens; anything else in an Authorization header is a 401.
    tokens: tuple[str, ...] = ()
    quota_core: int = 5000
    quota_search: int = 30
    quota_graphql: int = 5000
    anon_quota_core: int = 60
    anon_quota_search: int = 10
    #: Real seconds per simulated second: 3600 makes the hourly core window last one real second.
    time_scale: float = 1.0
    #: When set, every window (core, search, graphql) lasts this many real seconds, whatever time_scale says.
    reset_seconds: float | None = None
    #: Status of a primary-limit refusal: GitHub answers 403, and lately sometimes 429.
    exhausted_status: int = 403

    # -- faults (drawn from a seeded RNG, so a run is reproducible for a given request order) ----------------
    error_rate_502: float = 0.0
    error_rate_503: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.5
    #: Probability that a request trips the secondary limit (403 + Retry-After).
    secondary_rate: float = 0.0
    #: Retry-After of a secondary-limit refusal (whole seconds, as GitHub sends).
    secondary_retry_after: int = 1
    #: Status of a secondary-limit refusal: 403, or 429 (GitHub answers either).
    secondary_status: int = 403
    #: Concurrent requests one caller may have in flight before the secondary limit trips (GitHub: 100);
    #: 0 = no limit.
    max_concurrent: int = 100
    #: Probability that a search answer has `incomplete_results: true` and only part of its items.
    incomplete_rate: float = 0.0

    #: Answer POST /graphql (a subset: see graphql.py); off = 404, as an API without GraphQL would.
    graphql: bool = True

    # -- server ----------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 0
    #: Log each request line (without headers) to stderr.
    access_log: bool = False
    #: Serve GET /_simulator/stats and POST /_simulator/control (for a simulator run as a separate process).
    control: bool = False

    def window(self, resource: str) -> float:
        """Length in real seconds of the rate-limit window of `resource`."""
        if self.reset_seconds is not None:
            return float(self.reset_seconds)
        return GITHUB_WINDOWS.get(resource, 3600.0) / self.time_scale

    def quota(self, resource: str, authenticated: bool) -> int:
        if not authenticated:
            return {"core": self.anon_quota_core, "search": self.anon_quota_search}.get(resource, 0)
        return {"core": self.quota_core, "search": self.quota_search, "graphql": self.quota_graphql}.get(
            resource, self.quota_core
        )

    def validate(self) -> SimulatorConfig:
        """Raise ValueError with one clear line on an impossible setting."""
        if self.repos < 0:
            raise ValueError(f"repos must be >= 0, got {self.repos}")
        if self.min_stars < 0:
            raise ValueError(f"min_stars must be >= 0, got {self.min_stars}")
        if self.star_alpha <= 0:
            raise ValueError(f"star_alpha must be > 0, got {self.star_alpha}")
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if self.reset_seconds is not None and self.reset_seconds <= 0:
            raise ValueError(f"reset_seconds must be > 0, got {self.reset_seconds}")
        for name in ("error_rate_502", "error_rate_503", "slow_rate", "secondary_rate", "incomplete_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.exhausted_status not in (403, 429):
            raise ValueError(f"exhausted_status must be 403 or 429, got {self.exhausted_status}")
        if self.max_concurrent < 0:
            raise ValueError(f"max_concurrent must be >= 0, got {self.max_concurrent}")
        if self.secondary_status not in (403, 429):
            raise ValueError(f"secondary_status must be 403 or 429, got {self.secondary_status}")
        for token in self.tokens:
            if not token or any(c.isspace() for c in token) or "," in token:
                raise ValueError("tokens must be non-empty, without spaces or commas")
        return self

    def replace(self, **changes: object) -> SimulatorConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown simulator setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validate()  # type: ignore[arg-type]
