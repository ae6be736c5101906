"""Configuration of data_collection, read from the environment in this one place (docs/contracts.md §6).

Tokens are read here and handed to the token pool only: nothing else reads `GITHUB_TOKENS`, so there is a
single place to audit for leaks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_URL = "https://api.github.com"


class SettingsError(ValueError):
    """A configuration value is unusable (the CLI prints it as one line)."""


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must be >= 0, got {raw!r}")
    return value


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def parse_tokens(text: str) -> list[str]:
    """Tokens separated by commas, whitespace or newlines; `#` starts a comment line in a tokens file."""
    tokens: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        tokens.extend(t for t in line.replace(",", " ").split() if t)
    return tokens


def read_tokens(env: dict[str, str]) -> list[str]:
    """`GITHUB_TOKENS` (comma-separated) plus `GITHUB_TOKENS_FILE` (one or more per line), de-duplicated."""
    tokens = parse_tokens(env.get("GITHUB_TOKENS", ""))
    path = env.get("GITHUB_TOKENS_FILE", "").strip()
    if path:
        try:
            tokens += parse_tokens(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            # The path is configuration, not a secret: naming it helps the operator.
            raise SettingsError(f"GITHUB_TOKENS_FILE {path!r} cannot be read: {exc.strerror}") from None
    return list(dict.fromkeys(tokens))


@dataclass(frozen=True)
class Settings:
    """Everything tunable about talking to GitHub. `tokens` is excluded from repr so it never gets printed."""

    api_url: str = DEFAULT_API_URL
    tokens: tuple[str, ...] = field(default=(), repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: Attempts per request for 5xx / timeouts / connection errors before a clear error.
    max_tries: int = 6
    #: Exponential backoff (with full jitter) between those attempts: base and cap, seconds.
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Secondary-limit answers without Retry-After: wait this long (GitHub asks for at least a minute).
    secondary_wait: float = 60.0
    #: Secondary-limit answers tolerated in a row for one request before giving up.
    max_secondary: int = 10
    #: Longest single sleep for a primary rate-limit reset; longer means something is wrong: fail.
    max_reset_wait: float = 3700.0
    per_page: int = 100
    #: Repositories per GraphQL enrichment query (when the API has /graphql).
    graphql_batch: int = 50
    user_agent: str = "stargazer-data-collection"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise SettingsError(f"GITHUB_API_URL must start with http:// or https://, got {api_url!r}")
        return cls(
            api_url=api_url,
            tokens=tuple(read_tokens(env)),
            connect_timeout=_float(env, "GITHUB_CONNECT_TIMEOUT", 5.0),
            read_timeout=_float(env, "GITHUB_READ_TIMEOUT", 30.0),
            max_tries=_int(env, "GITHUB_MAX_TRIES", 6, minimum=1),
            backoff_base=_float(env, "GITHUB_BACKOFF_BASE", 0.5),
            backoff_max=_float(env, "GITHUB_BACKOFF_MAX", 30.0),
            secondary_wait=_float(env, "GITHUB_SECONDARY_WAIT", 60.0),
            max_secondary=_int(env, "GITHUB_MAX_SECONDARY", 10, minimum=1),
            max_reset_wait=_float(env, "GITHUB_MAX_RESET_WAIT", 3700.0),
            graphql_batch=_int(env, "GITHUB_GRAPHQL_BATCH", 50, minimum=0),
        )
