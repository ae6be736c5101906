"""Every repository matching `stars:>=N` (plus extra qualifiers), past GitHub's 1000-results-per-query cap.

The search API returns at most 1000 results (10 pages of 100) for any query, however many match. We cut the
star range into slices that each hold fewer than 1000 repositories, from the top down:

1. Query the remaining range `stars:lo..hi`, sorted by stars, descending. If it holds <= 1000, read all its
   pages: done.
2. Otherwise read its 10 pages: they are the 1000 most-starred of the range. Let `s` be the star count of the
   1000th. Every repository with more than `s` stars is among them, so `stars:s+1..hi` is a complete slice
   (under the cap by construction) and the remaining range becomes `stars:lo..s`. The slice boundary is read
   from the sorted answer itself, so no request is spent on counting, and no page is wasted.
3. When all 1000 share the top star value (`s == hi`), that single value holds >= 1000 repositories: it is
   split by `created:` date ranges, bisected recursively until each holds <= 1000.

Completeness is checked, not assumed: a slice's size must equal `total(range) - total(rest of range)`, both
given by GitHub; a mismatch re-reads the slice as its own query. `incomplete_results: true` pages are re-read.
Every repository is kept once (by id). Walking from the top means `--max-repos N` can stop as soon as N
repositories above the remaining range are known: the N most-starred are then certain, on every run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from data_collection.checkpoint import Checkpoint
from data_collection.client import GitHubClient
from data_collection.normalize import Row, normalize_item

log = logging.getLogger(__name__)

#: GitHub returns at most this many results per search query.
SEARCH_CAP = 1000
#: No public repository was created before this day (GitHub opened in 2008; its oldest repos are late 2007).
FIRST_DAY = date(2007, 10, 1)


class SearchError(RuntimeError):
    """The search cannot be made complete (>1000 repositories with one star count created on one day)."""


@dataclass
class Slice:
    """One piece of the partition, for the meta file: its query, GitHub's count and what we kept."""

    query: str
    total_count: int
    rows: int
    pages: int
    #: For slices cut from an over-cap range: the size GitHub's counts imply (checked against `rows`).
    expected: int | None = None


@dataclass
class Page:
    total_count: int
    incomplete: bool
    rows: list[Row]


def star_qualifier(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"stars:>={lo}"
    return f"stars:{lo}" if lo == hi else f"stars:{lo}..{hi}"


class SearchWalk:
    """Collects the search rows; every page is journaled so a resumed run replays instead of re-asking."""

    def __init__(self, client: GitHubClient, journal: Checkpoint, *, min_stars: int, query_extra: str = "",
                 max_repos: int | None = None, per_page: int = 100, incomplete_retries: int = 5,
                 progress: Callable[[int], None] | None = None,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self.client = client
        self.journal = journal
        self.min_stars = min_stars
        self.extra = " ".join(query_extra.split())
        self.max_repos = max_repos
        self.per_page = per_page
        self.pages_per_cap = math.ceil(SEARCH_CAP / per_page)
        self.incomplete_retries = incomplete_retries
        self._progress = progress or (lambda n: None)
        self._today = today
        self.rows: dict[int, Row] = {}
        self.slices: list[Slice] = []

    # -- public --------------------------------------------------------------------------------------------
    @property
    def base_query(self) -> str:
        return self._q(star_qualifier(self.min_stars, None))

    def run(self) -> list[Row]:
        """All matching rows (or the top `max_repos`), most stars first, ties by id."""
        lo, hi = self.min_stars, None
        # (GitHub's total for the range just cut, rows kept from it, was it one star value) until verified
        pending: tuple[int, int, bool] | None = None
        while hi is None or hi >= lo:
            query = self._q(star_qualifier(lo, hi))
            first = self._page(query, 1)
            if pending is not None:
                self._verify(pending, first.total_count)
                pending = None
            if first.total_count <= SEARCH_CAP:
                rows, pages = self._complete(query, first, *self._read_all(query, first))
                self._keep(query, first.total_count, rows, pages)
                break
            rows, pages = self._read_all(query, first)
            if not rows:
                raise SearchError(f"search {query!r}: GitHub counts {first.total_count} but returned none")
            boundary = min(r["stargazers_count"] for r in rows)
            top = max(r["stargazers_count"] for r in rows)
            if hi is None:
                hi = top
            if boundary >= hi:
                # The 1000 most-starred all have `hi` stars: that single value is over the cap.
                kept = self._split_by_date(hi)
                pending = (first.total_count, kept, True)
                hi -= 1
            else:
                kept_rows = [r for r in rows if r["stargazers_count"] > boundary]
                slice_q = self._q(star_qualifier(boundary + 1, hi))
                self._keep(slice_q, len(kept_rows), kept_rows, pages)
                pending = (first.total_count, len(kept_rows), False)
                hi = boundary
            if self.max_repos is not None and len(self.rows) >= self.max_repos:
                # Every repository left has <= hi stars, fewer than all of those already kept.
                break
        if pending is not None:
            # Stopped early (max_repos) or ran out of range: one count-only request closes the check.
            self._verify(pending, self._count(self._q(star_qualifier(lo, hi))) if hi >= lo else 0)
        ordered = sorted(self.rows.values(), key=lambda r: (-r["stargazers_count"], r["id"]))
        return ordered[: self.max_repos] if self.max_repos is not None else ordered

    # -- pieces --------------------------------------------------------------------------------------------
    def _q(self, qualifier: str) -> str:
        return f"{qualifier} {self.extra}".strip()

    def _fetch(self, query: str, page: int, per_page: int, tag: str = "") -> Page:
        """One search page, from the journal when a previous attempt already paid for it."""
        key = f"{query}{tag}" if per_page == self.per_page else f"{query}{tag}#per_page={per_page}"
        key_page = page
        stored = self.journal.search_page(key, key_page)
        if stored is not None:
            return Page(stored["total_count"], stored["incomplete"], stored["rows"])
        for attempt in range(self.incomplete_retries + 1):
            resp = self.client.get("/search/repositories", {"q": query, "sort": "stars", "order": "desc",
                                                             "per_page": per_page, "page": page})
            data = resp.data or {}
            incomplete = bool(data.get("incomplete_results"))
            if not incomplete:
                break
            log.info("incomplete_results for %r page %d (try %d): asking again", query, page, attempt + 1)
        stamp = datetime.now(UTC)
        rows = [normalize_item(item, stamp) for item in data.get("items", [])]
        result = Page(int(data.get("total_count", 0)), incomplete, rows)
        if incomplete:
            log.warning("search %r page %d still incomplete after %d tries; the slice check will catch gaps",
                        query, page, self.incomplete_retries + 1)
        # Not dataclasses.asdict: it deep-copies every row (seconds per thousand pages).
        self.journal.save_search_page(key, key_page, {"total_count": result.total_count,
                                                      "incomplete": incomplete, "rows": rows})
        return result

    def _page(self, query: str, page: int, tag: str = "") -> Page:
        return self._fetch(query, page, self.per_page, tag)

    def _count(self, query: str) -> int:
        return self._fetch(query, 1, 1).total_count

    def _read_all(self, query: str, first: Page, tag: str = "") -> tuple[list[Row], int]:
        """Pages 1..n of a query (n <= 10), de-duplicated by id within the query."""
        pages = min(self.pages_per_cap, max(1, math.ceil(first.total_count / self.per_page)))
        seen: dict[int, Row] = {r["id"]: r for r in first.rows}
        for number in range(2, pages + 1):
            page = self._page(query, number, tag)
            for row in page.rows:
                seen.setdefault(row["id"], row)
            if not page.rows:
                break
        return list(seen.values()), pages

    def _complete(self, query: str, first: Page, rows: list[Row], pages: int) -> tuple[list[Row], int]:
        """A query under the cap must give all it counts; if not (incomplete pages), read it again."""
        for attempt in range(1, 4):
            if len(rows) >= first.total_count:
                break
            log.warning("search %r: GitHub counts %d but %d were returned; reading it again",
                        query, first.total_count, len(rows))
            tag = f"#reread{attempt}"
            again, more = self._read_all(query, self._page(query, 1, tag), tag)
            seen = {r["id"]: r for r in rows}
            for row in again:
                seen.setdefault(row["id"], row)
            rows, pages = list(seen.values()), pages + more
        if len(rows) < first.total_count:
            log.warning("search %r: still %d of %d after re-reading", query, len(rows), first.total_count)
        return rows, pages

    def _keep(self, query: str, total: int, rows: list[Row], pages: int) -> None:
        for row in rows:
            self.rows.setdefault(row["id"], row)
        self.slices.append(Slice(query, total, len(rows), pages))
        self._progress(len(self.rows))

    def _verify(self, pending: tuple[int, int, bool], rest_total: int) -> None:
        """The slice just kept must hold exactly total(previous range) - total(rest) repositories."""
        previous_total, kept, single_value = pending
        expected = previous_total - rest_total
        last = self.slices[-1]
        if single_value or expected > SEARCH_CAP:
            if expected != kept:
                log.warning("date-split star value: kept %d but GitHub's counts imply %d", kept, expected)
            return
        last.expected = last.total_count = expected
        if expected == kept:
            return
        log.warning("slice %r: kept %d but GitHub's counts imply %d; re-reading it on its own",
                    last.query, kept, expected)
        first = self._page(last.query, 1, tag="#reread")
        rows, _pages = self._read_all(last.query, first, tag="#reread")
        before = len(self.rows)
        for row in rows:
            self.rows.setdefault(row["id"], row)
        last.rows += len(self.rows) - before
        last.pages += _pages

    def _split_by_date(self, stars: int) -> int:
        """All repositories with exactly `stars` stars, by created-date ranges under the cap; how many."""
        before = len(self.rows)
        stack = [(FIRST_DAY, self._today() + timedelta(days=1))]
        while stack:
            start, end = stack.pop()
            query = self._q(f"{star_qualifier(stars, stars)} created:{start.isoformat()}..{end.isoformat()}")
            first = self._page(query, 1)
            if first.total_count <= SEARCH_CAP:
                if first.total_count:
                    rows, pages = self._complete(query, first, *self._read_all(query, first))
                    self._keep(query, first.total_count, rows, pages)
                continue
            if start >= end:
                raise SearchError(f"more than {SEARCH_CAP} repositories with {stars} stars created on "
                                  f"{start}: cannot split further")
            middle = start + (end - start) // 2
            # Pushed so that the older half is read first: the order (and the journal) stays deterministic.
            stack.append((middle + timedelta(days=1), end))
            stack.append((start, middle))
        return len(self.rows) - before

    def slices_meta(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.slices]
