"""Configuration of data_collection, read from the environment in this one place (docs/contracts.md §6).

Tokens are read here and handed to the token pool only: nothing else reads `GITHUB_TOKENS`, so there is a
single place to audit for leaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from envsettings import EnvSettings, SettingsError
from envsettings.private_files import read_secret

DEFAULT_API_URL = "https://api.github.com"

__all__ = ["DEFAULT_API_URL", "Settings", "SettingsError", "parse_tokens"]


def parse_tokens(text: str) -> list[str]:
    """Tokens separated by commas, whitespace or newlines; `#` starts a comment line in a tokens file."""
    tokens: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        tokens.extend(t for t in line.replace(",", " ").split() if t)
    return tokens


class Settings(EnvSettings):
    """Everything tunable about talking to GitHub. `tokens` is excluded from repr so it never gets printed."""

    api_url: str = Field(DEFAULT_API_URL, validation_alias="GITHUB_API_URL",
                         description="GitHub API base URL (the simulator's in tests and the demo).")
    tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        (), repr=False, validation_alias="GITHUB_TOKENS",
        description="Tokens, comma-separated (secret; merged with GITHUB_TOKENS_FILE, duplicates dropped).")
    tokens_file: Path | None = Field(None, validation_alias="GITHUB_TOKENS_FILE",
                                     description="File of tokens, one or more per line, `#` comments.")
    connect_timeout: float = Field(5.0, ge=0, validation_alias="GITHUB_CONNECT_TIMEOUT",
                                   description="Seconds to connect to GitHub.")
    read_timeout: float = Field(30.0, ge=0, validation_alias="GITHUB_READ_TIMEOUT",
                                description="Seconds to wait for an answer.")
    max_tries: int = Field(6, ge=1, validation_alias="GITHUB_MAX_TRIES",
                           description="Attempts per request for 5xx, timeouts and connection errors.")
    backoff_base: float = Field(0.5, ge=0, validation_alias="GITHUB_BACKOFF_BASE",
                                description="Exponential backoff (full jitter) between attempts: base, s.")
    backoff_max: float = Field(30.0, ge=0, validation_alias="GITHUB_BACKOFF_MAX",
                               description="Exponential backoff between attempts: cap, s.")
    secondary_wait: float = Field(60.0, ge=0, validation_alias="GITHUB_SECONDARY_WAIT",
                                  description="Wait after a secondary-limit answer without Retry-After, s.")
    max_secondary: int = Field(10, ge=1, validation_alias="GITHUB_MAX_SECONDARY",
                               description="Secondary-limit answers tolerated in a row for one request.")
    max_reset_wait: float = Field(3700.0, ge=0, validation_alias="GITHUB_MAX_RESET_WAIT",
                                  description="Longest primary rate-limit reset sleep; longer fails, s.")
    per_page: int = 100
    graphql_batch: int = Field(50, ge=0, validation_alias="GITHUB_GRAPHQL_BATCH",
                               description="Repositories per GraphQL enrichment query (0: REST only).")
    user_agent: str = "stargazer-data-collection"

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        return tuple(parse_tokens(value)) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _add_file_tokens(self) -> Settings:
        if self.tokens_file is not None:
            text = read_secret(None, self.tokens_file, name="GITHUB_TOKENS") or ""
            merged = tuple(dict.fromkeys((*self.tokens, *parse_tokens(text))))
            object.__setattr__(self, "tokens", merged)  # frozen: this validator is the one writer
        return self
