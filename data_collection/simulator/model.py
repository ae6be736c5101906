"""The simulator's compact records of owners and repositories (the ground truth tests compare against).

WHY compact records and not GitHub's JSON: 10,000 repositories with ~80 fields each would cost seconds to
build and hundreds of MB; records are built in well under a second and the JSON is rendered only for the few
items a response carries (render.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Owner:
    login: str
    id: int
    type: str  # "User" | "Organization"
    followers: int
    following: int
    public_repos: int
    created_at: int  # epoch seconds
    name: str | None = None


@dataclass(slots=True)
class Repo:
    id: int
    owner: Owner
    name: str
    description: str | None
    homepage: str | None
    language: str | None
    license_key: str | None  # key into render.LICENSES ("mit", "other", ...), None = no license
    topics: tuple[str, ...]
    stargazers_count: int
    forks_count: int
    open_issues_count: int
    size: int
    created_at: int  # epoch seconds
    updated_at: int
    pushed_at: int
    has_issues: bool
    has_projects: bool
    has_wiki: bool
    has_pages: bool
    has_discussions: bool
    archived: bool
    fork: bool
    is_template: bool
    default_branch: str
    # -- what only the repo/list endpoints reveal ------------------------------------------------------------
    subscribers_count: int
    network_count: int
    contributors_count: int  # with anon=1 (users + anonymous)
    anon_contributors: int  # of which anonymous (not linked to a GitHub user)
    commits_count: int
    releases_count: int
    #: The genuine search item this record was loaded from (--pages), rendered as-is.
    raw: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def empty(self) -> bool:
        """A repository without any commit (GitHub: commits 409, contributors 204)."""
        return self.commits_count == 0

    def truth(self) -> dict[str, Any]:
        """The values a correct collector must find (for tests): dataset-contract names."""
        return {
            "full_name": self.full_name,
            "id": self.id,
            "owner_login": self.owner.login,
            "owner_type": self.owner.type,
            "stargazers_count": self.stargazers_count,
            "forks_count": self.forks_count,
            "open_issues_count": self.open_issues_count,
            "subscribers_count": self.subscribers_count,
            "contributors_count": self.contributors_count,
            "commits_count": self.commits_count,
            "releases_count": self.releases_count,
            "owner_followers": self.owner.followers,
        }
