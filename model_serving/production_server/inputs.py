"""Validation of what clients send (docs/contracts.md §5): the JSON API's items and the form's rows meet here.

Why one module: the form and the API must accept and refuse the same things, and the row a worker receives
must be a clean dataset row of §1 (JSON types, ISO 8601 UTC times, ``|``-joined topics) whichever door it came
through. Every refusal names the field and says why, in one line.

Bounds: counts are refused when negative or beyond anything GitHub holds (the largest repositories have
~10^5-10^6 forks, issues or commits; the bounds leave two orders of magnitude of room), and times must lie
between GitHub's founding and tomorrow. Unknown keys are ignored (never refused, never used), as the model
itself does; ``watchers_count`` and its aliases are dropped here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from data_collection.schema import DATASET_COLUMNS, TARGET_COLUMN, TOPICS_SEPARATOR
from model_serving.production_server.settings import MAX_REPOSITORIES

#: GitHub's rules: owner 1-39 of [A-Za-z0-9-]; repository 1-100 of [A-Za-z0-9._-].
FULL_NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
#: The pattern lets these through as a name, but in a URL path they mean "here" and "up": ``owner/..`` would
#: become ``GET /repos/``. GitHub allows neither as an owner or a repository name.
DOT_SEGMENTS: Final = frozenset({".", ".."})
EARLIEST: Final = datetime(2007, 10, 1, tzinfo=UTC)  # GitHub's first repositories date from late 2007
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

#: Upper bounds of the count columns (inclusive).
COUNT_LIMITS: Final[dict[str, int]] = {
    "id": 10**12,
    "stargazers_count": 10**8,
    "forks_count": 10**7,
    "open_issues_count": 10**7,
    "size": 10**9,  # kilobytes
    "subscribers_count": 10**7,
    "contributors_count": 10**7,
    "commits_count": 10**9,
    "releases_count": 10**6,
    "owner_followers": 10**9,
}


class InputError(ValueError):
    """A request whose content is invalid: ``message`` is one line, ``details`` maps field -> reason."""

    def __init__(self, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


def _no_numbers_as_times(value: Any) -> Any:
    """pydantic reads 1600000000 as a Unix time; the contract says ISO 8601 strings, so refuse numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 date or time string, e.g. 2021-05-20 or 2021-05-20T12:00:00Z")
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def _strict_count(value: Any) -> Any:
    """Counts are integers: refuse booleans and fractions (pydantic would read true as 1 and 2.0 as 2)."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true/false")
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            raise ValueError("must be a whole number")
        # 1e20 is a whole number too: as an int it meets the range check and its clear message, instead
        # of pydantic's "Unable to parse input string as an integer, exceeded maximum size".
        return int(value)
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


Time = Annotated[datetime | None, BeforeValidator(_no_numbers_as_times)]
Text = Annotated[str | None, Field(max_length=300)]


Count = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(_strict_count)]


class RepositoryInput(BaseModel):
    """One item of the API's ``repositories`` list: ``{"full_name"}`` alone, or dataset columns of §1."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    full_name: str | None = Field(default=None, max_length=140)
    id: Count = None
    owner_login: Text = None
    owner_type: Literal["User", "Organization"] | None = None
    stargazers_count: Count = None
    forks_count: Count = None
    open_issues_count: Count = None
    size: Count = None
    language: Annotated[str | None, Field(max_length=100)] = None
    license_spdx: Annotated[str | None, Field(max_length=100)] = None
    topics: str | list[str] | None = None
    description: Annotated[str | None, Field(max_length=2000)] = None
    homepage: Annotated[str | None, Field(max_length=500)] = None
    has_wiki: bool | None = None
    has_pages: bool | None = None
    has_issues: bool | None = None
    has_projects: bool | None = None
    has_discussions: bool | None = None
    archived: bool | None = None
    fork: bool | None = None
    is_template: bool | None = None
    default_branch: Text = None
    created_at: Time = None
    updated_at: Time = None
    pushed_at: Time = None
    subscribers_count: Count = None
    contributors_count: Count = None
    commits_count: Count = None
    releases_count: Count = None
    owner_followers: Count = None
    collected_at: Time = None

    @field_validator("full_name")
    @classmethod
    def _full_name(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not FULL_NAME_PATTERN.match(value):
            raise ValueError("must look like owner/name (letters, digits, '-', '.', '_')")
        if any(part in DOT_SEGMENTS for part in value.split("/")):
            raise ValueError("'.' and '..' are not names: give the repository's owner/name")
        return value

    @field_validator(*COUNT_LIMITS)
    @classmethod
    def _not_absurd(cls, value: int | None, info: ValidationInfo) -> int | None:
        limit = COUNT_LIMITS[str(info.field_name)]
        if value is not None and value > limit:
            raise ValueError(f"must be at most {limit:,} (no GitHub repository comes near)")
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: str | list[str] | None) -> str | None:
        if value is None:
            return None
        topics = value if isinstance(value, list) else value.split(TOPICS_SEPARATOR)
        cleaned = [t.strip() for t in topics if t.strip()]
        if len(cleaned) > 50:
            raise ValueError("at most 50 topics")
        return TOPICS_SEPARATOR.join(cleaned) or None

    @field_validator("created_at", "updated_at", "pushed_at", "collected_at")
    @classmethod
    def _time_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if value < EARLIEST:
            raise ValueError("must not be before 2007-10-01 (GitHub did not exist)")
        if value > datetime.now(UTC) + timedelta(days=1):
            raise ValueError("must not be in the future")
        return value

    def is_lookup(self) -> bool:
        """Only ``full_name`` given (``stargazers_count`` aside): the repository is looked up on GitHub."""
        given = self.model_dump(exclude_none=True, exclude={"full_name", TARGET_COLUMN})
        return self.full_name is not None and not given

    def to_row(self, collected_at: datetime) -> dict[str, Any]:
        """A dataset row (§1 columns, JSON types); unknown values None; ages count from ``collected_at``."""
        data = self.model_dump()
        row: dict[str, Any] = {}
        for column in DATASET_COLUMNS:
            value = data.get(column)
            if isinstance(value, datetime):
                value = value.strftime(TIME_FORMAT)
            row[column] = value
        if row["collected_at"] is None:
            row["collected_at"] = collected_at.astimezone(UTC).strftime(TIME_FORMAT)
        return row


@dataclass(frozen=True)
class RequestItem:
    """A validated item: either a name to look up, or a row ready for the model."""

    full_name: str | None
    lookup: bool
    row: dict[str, Any] | None
    actual_stars: int | None


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def parse_items(
    raw_items: list[Any], *, now: datetime | None = None, prefix: str = "repositories"
) -> list[RequestItem]:
    """Validate API items; InputError lists every bad field as ``repositories[i].field``."""
    now = now or datetime.now(UTC)
    details: dict[str, str] = {}
    items: list[RequestItem] = []
    for index, raw in enumerate(raw_items):
        where = f"{prefix}[{index}]"
        if not isinstance(raw, dict):
            details[where] = "must be an object such as {\"full_name\": \"owner/name\"} or dataset columns"
            continue
        try:
            parsed = RepositoryInput.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                details[f"{where}.{_where(tuple(error['loc']))}"] = _reason(error)
            continue
        given = parsed.model_dump(exclude_none=True)
        if not given:
            details[where] = "empty: give full_name, or the repository's columns"
            continue
        if parsed.is_lookup():
            items.append(RequestItem(parsed.full_name, True, None, parsed.stargazers_count))
        else:
            items.append(RequestItem(parsed.full_name, False, parsed.to_row(now), parsed.stargazers_count))
    if details:
        first_field, first_reason = next(iter(details.items()))
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise InputError(f"invalid input: {first_field}: {first_reason}{more}", details)
    return items


def parse_request(body: Any) -> list[RequestItem]:
    """The whole JSON body: ``{"repositories": [1..100 items]}``."""
    if not isinstance(body, dict):
        raise InputError('the body must be a JSON object: {"repositories": [...]}')
    repositories = body.get("repositories")
    if not isinstance(repositories, list):
        raise InputError('the body must hold "repositories": a list of 1 to 100 items',
                         {"repositories": "missing or not a list"})
    if not 1 <= len(repositories) <= MAX_REPOSITORIES:
        raise InputError(
            f"repositories must hold 1 to {MAX_REPOSITORIES} items, got {len(repositories)}",
            {"repositories": f"{len(repositories)} items; 1 to {MAX_REPOSITORIES} allowed"},
        )
    return parse_items(repositories)
