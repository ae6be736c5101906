"""A tiny in-process GitHub search/enrichment backend for requests-mock unit tests.

Unit tests use it to pin down the algorithms (cap splitting, date splitting, counting via Link) without a
server; the integration tests run the same code against the project's simulator over real HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests_mock

API = "https://api.example.test"


@dataclass
class FakeRepo:
    id: int
    owner: str
    name: str
    stars: int
    created: date
    contributors: int = 3
    commits: int = 10
    releases: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id, "full_name": self.full_name, "name": self.name,
            "owner": {"login": self.owner, "type": "User"},
            "stargazers_count": self.stars, "watchers_count": self.stars, "watchers": self.stars,
            "forks_count": self.stars // 10, "open_issues_count": 1, "size": 100, "language": "Python",
            "license": {"spdx_id": "MIT"}, "topics": ["a", "b"], "description": "d", "homepage": None,
            "has_wiki": True, "has_pages": False, "has_issues": True, "has_projects": True,
            "has_discussions": False, "archived": False, "fork": False, "is_template": False,
            "default_branch": "main", "created_at": f"{self.created.isoformat()}T12:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "pushed_at": "2024-01-02T00:00:00Z",
            "subscribers_count": self.stars // 20,
        }


@dataclass
class FakeGitHub:
    repos: list[FakeRepo]
    calls: list[str] = field(default_factory=list)
    followers: int = 7
    graphql: bool = False

    def install(self, mocker: requests_mock.Mocker) -> None:
        mocker.get(re.compile(re.escape(API) + r"/.*"), json=self._answer)
        mocker.post(API + "/graphql", json=self._graphql)

    def _graphql(self, request: Any, context: Any) -> Any:
        self.calls.append("/graphql")
        if not self.graphql:
            context.status_code = 404
            return {"message": "Not Found"}
        variables = request.json()["variables"]
        by_name = {r.full_name: r for r in self.repos}
        data = {}
        for i in range(len(variables) // 2):
            repo = by_name.get(f"{variables[f'o{i}']}/{variables[f'n{i}']}")
            data[f"r{i}"] = None if repo is None else {
                "watchers": {"totalCount": repo.stars // 20},
                "releases": {"totalCount": repo.releases},
                "defaultBranchRef": None if repo.commits == 0 else {
                    "target": {"history": {"totalCount": repo.commits}}},
                "owner": {"__typename": "User", "login": repo.owner,
                          "followers": {"totalCount": self.followers}},
            }
        return {"data": data}

    # -- search ---------------------------------------------------------------------------------------
    def matching(self, q: str) -> list[FakeRepo]:
        repos = self.repos
        for term in q.split():
            key, _, value = term.partition(":")
            if key == "stars":
                if value.startswith(">="):
                    lo, hi = int(value[2:]), None
                elif ".." in value:
                    a, b = value.split("..")
                    lo, hi = int(a), int(b)
                else:
                    lo = hi = int(value)
                repos = [r for r in repos if r.stars >= lo and (hi is None or r.stars <= hi)]
            elif key == "created":
                a, b = value.split("..")
                start, end = date.fromisoformat(a), date.fromisoformat(b)
                repos = [r for r in repos if start <= r.created <= end]
        return sorted(repos, key=lambda r: (-r.stars, r.id))

    def _answer(self, request: Any, context: Any) -> Any:
        url = urlsplit(request.url)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        self.calls.append(path)
        context.headers.update({"x-ratelimit-remaining": "4000", "x-ratelimit-limit": "5000",
                                "x-ratelimit-reset": "9999999999"})
        per_page = int(params.get("per_page", 30))
        page = int(params.get("page", 1))
        if path == "/search/repositories":
            found = self.matching(params["q"])
            visible = found[:1000]
            chunk = visible[(page - 1) * per_page: page * per_page]
            items = [r.item() for r in chunk]
            return {"total_count": len(found), "incomplete_results": False, "items": items}
        parts = path.strip("/").split("/")
        if parts[0] == "users":
            return {"login": parts[1], "followers": self.followers}
        repo = next(r for r in self.repos if r.full_name == f"{parts[1]}/{parts[2]}")
        if len(parts) == 3:
            return repo.item()
        counts = {"contributors": repo.contributors, "commits": repo.commits, "releases": repo.releases}
        count = counts[parts[3]]
        if count == 0 and parts[3] == "commits":
            context.status_code = 409
            return {"message": "Git Repository is empty."}
        if count == 0:
            return []
        if count > 1:
            base = f"{API}{path}?per_page=1"
            context.headers["Link"] = f'<{base}&page=2>; rel="next", <{base}&page={count}>; rel="last"'
        return [{"n": 1}]


def population(n: int, *, tie_value: int | None = None, ties: int = 0, min_stars: int = 10) -> list[FakeRepo]:
    """`n` repositories with heavy-tailed stars >= min_stars; optionally `ties` of them share one value."""
    repos = []
    for i in range(n):
        stars = min_stars + int(200_000 / (i + 1) ** 1.1) if i >= ties else (tie_value or min_stars)
        created = date(2010, 1, 1) + timedelta(days=(i * 37) % 4000)
        repos.append(FakeRepo(id=10_000 + (i * 7919) % 100_000, owner=f"o{i % 700}", name=f"r{i}",
                              stars=stars, created=created, contributors=i % 5, commits=(i % 50),
                              releases=i % 3))
    return repos
