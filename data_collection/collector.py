"""One collection run: search -> (enrichment) -> atomic dataset + meta, resumable through the journal.

This is the library entry point behind `python -m data_collection collect`; tests and the benchmark call it
directly.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data_collection.checkpoint import Checkpoint, checkpoint_path
from data_collection.client import GitHubClient
from data_collection.dataset import write_dataset
from data_collection.enrich import Enricher
from data_collection.normalize import iso_utc
from data_collection.progress import Progress
from data_collection.search import SearchWalk
from data_collection.settings import Settings
from data_collection.tokens import TokenPool

log = logging.getLogger(__name__)


class OutputError(RuntimeError):
    """The output location cannot be written: found before a single API call is spent."""


@dataclass
class CollectOptions:
    out: Path
    min_stars: int = 50
    max_repos: int | None = None
    query_extra: str = ""
    enrich: bool = True
    workers: int = 4
    resume: bool = False
    #: None: batch through GraphQL when the API has it; False: REST only.
    graphql: bool | None = None
    show_progress: bool | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)


def check_writable(out: Path) -> None:
    """Fail early (before any request) when the dataset could not be written at the end."""
    if out.exists() and out.is_dir():
        raise OutputError(f"output {out} is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror}") from None


def now_utc() -> str:
    return iso_utc(datetime.now(UTC)) or ""


def collect(options: CollectOptions, settings: Settings, pool: TokenPool | None = None) -> dict[str, Any]:
    """Run (or resume) a collection; returns the meta written next to the dataset."""
    out = Path(options.out)
    check_writable(out)
    params = {"api_url": settings.api_url, "min_stars": options.min_stars, "max_repos": options.max_repos,
              "query_extra": " ".join(options.query_extra.split()), "enrich": options.enrich}
    journal = Checkpoint(checkpoint_path(out), params, resume=options.resume)
    if journal.resumed:
        log.info("resuming from %s", journal.path)
    started = journal.started_at(now_utc())
    pool = pool if pool is not None else TokenPool(list(settings.tokens))
    progress = Progress(pool, enabled=options.show_progress)
    client = GitHubClient(settings, pool, status=progress.status, on_call=journal.add_call,
                          pool_size=max(4, options.workers + 2))
    finished = False
    try:
        walk = SearchWalk(client, journal, min_stars=options.min_stars, query_extra=options.query_extra,
                          max_repos=options.max_repos, per_page=settings.per_page, progress=progress.update)
        progress.phase("search", options.max_repos, resource="search")
        rows = walk.run()
        progress.update(len(rows))
        if options.enrich:
            progress.phase("enrich", len(rows), resource="core")
            Enricher(client, journal, workers=options.workers, progress=progress.update,
                     graphql=False if options.graphql is False else None).run(rows)
        progress.close()
        meta = {
            "query": walk.base_query,
            "min_stars": options.min_stars,
            "max_repos": options.max_repos,
            "query_extra": params["query_extra"],
            "enriched": options.enrich,
            "slices": walk.slices_meta(),
            "collected_started_at": started,
            "collected_finished_at": now_utc(),
            "api_calls": journal.calls(),
            "not_modified": client.not_modified,
            "tokens": len(pool.tokens),
            **options.extra_meta,
        }
        written = write_dataset(rows, out, meta)
        finished = True
    finally:
        progress.close()
        client.close()
        if not finished:
            journal.close()  # kept on disk: `--resume` continues from it
    journal.remove()
    log.info("wrote %s: %d rows, %d slices, api calls %s", out, written["rows"], len(written["slices"]),
             written["api_calls"])
    return written
