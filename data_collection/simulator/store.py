"""The simulator's repositories, indexed for GitHub-like search and lookups.

WHY a pre-sorted index: a collection issues thousands of `stars:a..b` slices; sorting the repositories once by
stars (descending) turns each star range into a contiguous run found by bisect, so a query costs O(log n + k)
where k is the run it must filter for the other qualifiers. Results are cached per (query, sort, order):
paging through ten pages of one slice filters once.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable

from data_collection.simulator.model import Owner, Repo
from data_collection.simulator.query import Query, parse

SORTS = ("stars", "forks", "help-wanted-issues", "updated")


class RepoStore:
    def __init__(self, repos: Iterable[Repo]) -> None:
        self.repos: list[Repo] = list(repos)
        # stars descending, then id descending: GitHub's order among equal stars is unspecified but stable.
        self._by_stars = sorted(self.repos, key=lambda r: (-r.stargazers_count, -r.id))
        self._neg_stars = [-r.stargazers_count for r in self._by_stars]
        self._by_name = {r.full_name.lower(): r for r in self.repos}
        self._owners: dict[str, Owner] = {r.owner.login.lower(): r.owner for r in self.repos}
        self._cache: OrderedDict[tuple[Query, str, str], list[Repo]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.repos)

    def repo(self, full_name: str) -> Repo | None:
        """Case-insensitive, as GitHub's /repos/{owner}/{name} is."""
        return self._by_name.get(full_name.lower())

    def owner(self, login: str) -> Owner | None:
        return self._owners.get(login.lower())

    def search(self, q: str | Query, sort: str = "stars", order: str = "desc") -> list[Repo]:
        """Every repository matching `q`, in the answer's order (the ground truth for tests, too)."""
        query = parse(q) if isinstance(q, str) else q
        key = (query, sort, order)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        result = self._search(query, sort, order)
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > 512:
                self._cache.popitem(last=False)
        return result

    def _search(self, query: Query, sort: str, order: str) -> list[Repo]:
        lo, hi = query.star_bounds()
        if lo >= hi:
            return []
        # stars in [lo, hi)  <=>  -stars in (-hi, -lo]
        start = 0 if hi == math.inf else bisect.bisect_right(self._neg_stars, -hi)
        end = bisect.bisect_right(self._neg_stars, -lo)
        run = [r for r in self._by_stars[start:end] if query.matches(r)]
        if sort == "forks":
            run.sort(key=lambda r: (-r.forks_count, -r.id))
        elif sort == "updated":
            run.sort(key=lambda r: (-r.updated_at, -r.id))
        elif sort == "help-wanted-issues":
            run.sort(key=lambda r: (-r.open_issues_count, -r.id))
        # "stars" and best match (no sort) keep the index order.
        if order == "asc":
            run.reverse()
        return run
