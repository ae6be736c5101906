"""A SQLite journal next to the output that makes a collection resumable after `kill -9` at any moment.

WHY a journal of answers rather than a saved cursor: the search walk and the enrichment are deterministic
functions of the API's answers. Journaling every answer as it arrives (one small committed write per request)
and replaying the same code on `--resume` reproduces exactly the same decisions, slices and rows, and only the
requests that were in flight when the process died are sent again.

WAL mode with `synchronous=NORMAL`: a committed transaction survives the death of the process (not a power
cut, which is not what we defend against here), and commits cost tens of microseconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS search_pages (
    query TEXT NOT NULL, page INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (query, page));
CREATE TABLE IF NOT EXISTS enrichment (
    full_name TEXT NOT NULL, field TEXT NOT NULL, value INTEGER, PRIMARY KEY (full_name, field));
CREATE TABLE IF NOT EXISTS owners (login TEXT PRIMARY KEY, followers INTEGER);
CREATE TABLE IF NOT EXISTS calls (resource TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""


class CheckpointError(RuntimeError):
    """The checkpoint cannot be used (made with other parameters, or unreadable)."""


def checkpoint_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.sqlite")


class Checkpoint:
    """Thread-safe journal; every `save_*` is committed before it returns."""

    def __init__(self, path: str | Path, params: Mapping[str, Any], *, resume: bool) -> None:
        self.path = Path(path)
        self.resumed = resume and self.path.exists()
        if not resume:
            self.remove_files(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"checkpoint {self.path} is unusable ({exc}); delete it or run without "
                                  "--resume") from None
        wanted = json.dumps(dict(params), sort_keys=True)
        stored = self._get("params")
        if stored is None:
            self._put("params", wanted)
        elif stored != wanted:
            raise CheckpointError(f"checkpoint {self.path} was made with other parameters {stored}; "
                                  "run without --resume to start over")

    # -- run-level values ----------------------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO run (key, value) VALUES (?, ?)", (key, value))

    def flag(self, key: str) -> str | None:
        """A fact learned during the run (e.g. the API has no GraphQL): a resume need not re-learn it."""
        return self._get(f"flag:{key}")

    def set_flag(self, key: str, value: str) -> None:
        self._put(f"flag:{key}", value)

    def started_at(self, default: str) -> str:
        """The first attempt's start time (kept across resumes)."""
        stored = self._get("started_at")
        if stored is None:
            self._put("started_at", default)
            return default
        return stored

    # -- search pages --------------------------------------------------------------------------------------
    def search_page(self, query: str, page: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM search_pages WHERE query = ? AND page = ?",
                                   (query, page)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_search_page(self, query: str, page: int, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO search_pages (query, page, payload) VALUES (?, ?, ?)",
                             (query, page, json.dumps(payload)))

    # -- enrichment ----------------------------------------------------------------------------------------
    def enrichment(self) -> dict[str, dict[str, int | None]]:
        """full_name -> {field: value} for every field already answered (value None = GitHub refused)."""
        out: dict[str, dict[str, int | None]] = {}
        with self._lock:
            for name, field, value in self._db.execute("SELECT full_name, field, value FROM enrichment"):
                out.setdefault(name, {})[field] = value
        return out

    def save_enrichment(self, full_name: str, field: str, value: int | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO enrichment (full_name, field, value) VALUES (?, ?, ?)",
                             (full_name, field, value))

    def save_batch(self, values: list[tuple[str, str, int | None]], owners: dict[str, int | None]) -> None:
        """Everything one request answered (a GraphQL batch), in ONE transaction: a kill keeps all or none."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO enrichment (full_name, field, value) "
                                     "VALUES (?, ?, ?)", values)
                self._db.executemany("INSERT OR REPLACE INTO owners (login, followers) VALUES (?, ?)",
                                     list(owners.items()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def owners(self) -> dict[str, int | None]:
        with self._lock:
            return dict(self._db.execute("SELECT login, followers FROM owners").fetchall())

    def save_owner(self, login: str, followers: int | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO owners (login, followers) VALUES (?, ?)",
                             (login, followers))

    # -- request accounting (meta.json api_calls, summed over attempts) ------------------------------------
    def add_call(self, resource: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO calls (resource, n) VALUES (?, 1) "
                             "ON CONFLICT(resource) DO UPDATE SET n = n + 1", (resource,))

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT resource, n FROM calls ORDER BY resource").fetchall())

    # -- lifecycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def remove(self) -> None:
        """After the dataset is safely written the journal has no further use."""
        self.close()
        self.remove_files(self.path)

    @staticmethod
    def remove_files(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
