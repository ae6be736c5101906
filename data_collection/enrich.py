"""Enrichment: the five columns search results do not carry, each counted in ONE request.

- `subscribers_count` (the real watchers): `GET /repos/{owner}/{name}`.
- `contributors_count`, `commits_count`, `releases_count`: `GET .../{list}?per_page=1`; with one item per page
  the `Link: rel="last"` page number IS the count, so history is never paged through. No `Link` means at most
  one item: the count is the length of the body. Empty repositories answer 204 (contributors) or 409
  (commits): 0. GitHub refuses the contributor list of its largest repositories with 403 "too large":
  unknown (empty).
- `owner_followers`: `GET /users/{login}`, once per owner (owners have many repositories).

When the API has GraphQL, subscribers, commits and releases (and user followers) come from batched queries
instead (see graphql.py): about 1 + 1/50 requests per repository instead of 4.

Every answer is journaled at once, so a resumed run asks only what it had not received.
Work is spread over `workers` threads that share the client, hence the connection pool and the token pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from data_collection.checkpoint import Checkpoint
from data_collection.client import ApiResponse, GitHubClient
from data_collection.graphql import GRAPHQL_FIELDS, GraphQLUnavailable, build_query, parse_answer
from data_collection.normalize import Row

log = logging.getLogger(__name__)

REPO_FIELDS = ("subscribers_count", "contributors_count", "commits_count", "releases_count")


def count_from(resp: ApiResponse) -> int | None:
    """The item count of a `per_page=1` list answer (see the module docstring); None when refused."""
    if resp.status == 204:
        return 0
    if resp.status == 409:  # "Git Repository is empty."
        return 0
    if resp.status != 200:
        return None
    last = resp.last_page()
    if last is not None:
        return last
    return len(resp.data) if isinstance(resp.data, list) else None


#: field -> (list path, query). Contributors with `anon=true`: authors without a GitHub account count too.
LIST_REQUESTS: dict[str, tuple[str, dict[str, str | int]]] = {
    "contributors_count": ("contributors", {"per_page": 1, "anon": "true"}),
    "commits_count": ("commits", {"per_page": 1}),
    "releases_count": ("releases", {"per_page": 1}),
}


def fetch_count(client: GitHubClient, full_name: str, field: str) -> int | None:
    """One enrichment value of one repository in one request (serving's lookups use it too)."""
    if field == "subscribers_count":
        resp = client.get(f"/repos/{full_name}", accept=(403, 404, 451))
        if resp.status != 200 or not isinstance(resp.data, dict):
            return None
        value = resp.data.get("subscribers_count")
        return None if value is None else int(value)
    path, params = LIST_REQUESTS[field]
    resp = client.get(f"/repos/{full_name}/{path}", params, accept=(403, 404, 409, 422, 451))
    if resp.status == 403:
        log.info("%s: GitHub refuses its %s list (%s): left empty", full_name, path, resp.message())
    return count_from(resp)


def fetch_followers(client: GitHubClient, login: str) -> int | None:
    resp = client.get(f"/users/{login}", accept=(403, 404, 451))
    if resp.status != 200 or not isinstance(resp.data, dict) or resp.data.get("followers") is None:
        return None
    return int(resp.data["followers"])


class Enricher:
    def __init__(self, client: GitHubClient, journal: Checkpoint, *, workers: int = 4,
                 progress: Callable[[int], None] | None = None, graphql: bool | None = None) -> None:
        """`graphql`: None = use it when the API has it; False = REST only (e.g. the naive benchmark)."""
        self.client = client
        self.graphql = graphql
        self.journal = journal
        self.workers = max(1, workers)
        self._progress = progress or (lambda n: None)

    # -- one value each ------------------------------------------------------------------------------------
    def fetch(self, full_name: str, field: str) -> int | None:
        return fetch_count(self.client, full_name, field)

    def fetch_followers(self, login: str) -> int | None:
        return fetch_followers(self.client, login)

    # -- GraphQL batches (when the API has them) -----------------------------------------------------------
    def _graphql_batch(self, names: list[str], done: dict[str, dict[str, int | None]],
                       owners: dict[str, int | None]) -> None:
        query, variables = build_query(names)
        resp = self.client.graphql(query, variables)
        if resp.status == 404:
            raise GraphQLUnavailable("no /graphql endpoint")
        repos, followers = parse_answer(names, resp.data)
        # Unknown here (None): not journaled, so REST gets its chance.
        values = [(name, field, value) for name, fields in repos.items()
                  for field, value in fields.items() if value is not None]
        self.journal.save_batch(values, dict(followers))
        for name, field, value in values:
            done.setdefault(name, {})[field] = value
        owners.update(followers)

    def _run_graphql(self, rows: list[Row], done: dict[str, dict[str, int | None]],
                     owners: dict[str, int | None]) -> None:
        size = self.client.settings.graphql_batch
        names = [r["full_name"] for r in rows
                 if any(f not in done.get(r["full_name"], {}) for f in GRAPHQL_FIELDS)]
        if not names or size <= 0 or self.graphql is False:
            return
        if all(t.anonymous for t in self.client.pool.tokens):
            return  # GitHub's GraphQL API needs a token
        if self.journal.flag("graphql") == "unavailable":
            self.graphql = False
            return
        batches = [names[i:i + size] for i in range(0, len(names), size)]
        try:
            self._graphql_batch(batches[0], done, owners)  # alone first: is there a /graphql at all?
        except GraphQLUnavailable:
            log.info("the API has no GraphQL endpoint: enriching over REST only")
            self.journal.set_flag("graphql", "unavailable")
            self.graphql = False
            return
        self.graphql = True
        self._parallel([lambda b=b: self._graphql_batch(b, done, owners) for b in batches[1:]],
                       lambda: self._progress(self._count_done(rows, done)))

    # -- the run -------------------------------------------------------------------------------------------
    @staticmethod
    def _count_done(rows: list[Row], done: dict[str, dict[str, int | None]]) -> int:
        return sum(1 for r in rows if len(done.get(r["full_name"], {})) == len(REPO_FIELDS))

    def _parallel(self, jobs: list[Callable[[], None]], tick: Callable[[], None]) -> None:
        """Run jobs on `workers` threads; the first failure stops the rest (in-flight ones finish)."""
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="enrich") as pool:
            futures = [pool.submit(job) for job in jobs]
            for future in as_completed(futures):
                error = future.exception()
                if error is not None:
                    # Requests in flight finish (and are journaled); queued ones are never sent.
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise error
                tick()

    def run(self, rows: list[Row]) -> None:
        """Fill the enrichment columns of `rows` in place (journal first, then GitHub for what is missing)."""
        done = self.journal.enrichment()
        owners = self.journal.owners()
        self._progress(self._count_done(rows, done))
        self._run_graphql(rows, done, owners)

        # The bar counts repositories whose values are ALL in: owner lookups (one per owner) are jobs too,
        # but ticking on them would show the run further along than it is.
        finished = [self._count_done(rows, done)]
        finished_lock = threading.Lock()

        def do_repo(name: str, fields: list[str]) -> None:
            for field in fields:
                value = self.fetch(name, field)
                self.journal.save_enrichment(name, field, value)
                done.setdefault(name, {})[field] = value
            with finished_lock:
                finished[0] += 1

        def do_owner(login: str) -> None:
            value = self.fetch_followers(login)
            self.journal.save_owner(login, value)
            owners[login] = value

        jobs: list[Callable[[], None]] = [lambda o=o: do_owner(o)
                                          for o in sorted({r["owner_login"] for r in rows} - set(owners))]
        for row in rows:
            missing = [f for f in REPO_FIELDS if f not in done.get(row["full_name"], {})]
            if missing:
                jobs.append(lambda n=row["full_name"], m=missing: do_repo(n, m))

        def tick() -> None:
            with finished_lock:
                value = min(len(rows), finished[0])
            self._progress(value)

        self._parallel(jobs, tick)
        self._progress(self._count_done(rows, done))

        for row in rows:
            values = done.get(row["full_name"], {})
            for field in REPO_FIELDS:
                row[field] = values.get(field)
            row["owner_followers"] = owners.get(row["owner_login"])
