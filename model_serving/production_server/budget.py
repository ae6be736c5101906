"""Each client's budget of GitHub calls per hour: one client cannot spend the quota every user shares.

The rule: a token bucket per client address holding at most ``per_hour`` calls, refilled at ``per_hour`` an
hour. Before a lookup asks GitHub, the most it can cost is reserved (``reserve``); a client whose bucket does
not hold that much gets ``BudgetSpent`` with the seconds until it will (the API's 429 and ``Retry-After``).
Afterwards the reservation is settled with the calls really made (``settle``): unused calls go back, extra
ones are charged. A request larger than the whole budget is admitted on a full bucket and leaves a debt, so
even the largest request remains possible, once an hour.

Where the state lives, and why SQLite: gunicorn runs several processes of several threads, and a client's
requests land on any of them, so the buckets must be shared by every process of the host and survive a
worker restart. A small SQLite file in ``STARGAZER_STATE_DIR`` does that with the standard library: a
``BEGIN IMMEDIATE`` transaction makes each read-modify-write atomic across processes (one write lock, held
for microseconds), WAL mode keeps readers from blocking. Shared memory would need a hand-written table and a
cross-process lock; the broker (RabbitMQ) has queues, not counters. The budget is per host: with several
production hosts behind one balancer, a client's requests spread over them and each host meters what it
sent to GitHub (tokens are per host too).

Buckets idle for an hour without a debt are full again, so their rows are deleted now and then: the file stays
small.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HOUR: Final = 3600.0
_UPSERT: Final = ("INSERT INTO buckets (client, calls, updated) VALUES (?, ?, ?) ON CONFLICT(client) "
                  "DO UPDATE SET calls = excluded.calls, updated = excluded.updated")
#: Every this many reservations of a process, buckets idle for an hour are deleted.
PRUNE_EVERY: Final = 200


class BudgetSpent(Exception):
    """The client's GitHub budget cannot cover the lookup now; ``retry_after`` seconds until it can."""

    def __init__(self, client: str, needed: int, per_hour: float, retry_after: int) -> None:
        super().__init__(
            f"your GitHub lookup budget is spent: this request needs up to {needed} GitHub calls and each "
            f"client may use {per_hour:g} an hour; retry in {retry_after} s, or describe the repositories "
            "by hand"
        )
        self.client = client
        self.needed = needed
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reservation:
    client: str
    calls: int


class GitHubBudget:
    """The buckets of one host, in the SQLite file ``path`` (created on first use)."""

    def __init__(self, path: Path, per_hour: float, clock: Callable[[], float] = time.time) -> None:
        if per_hour <= 0:
            raise ValueError("per_hour must be positive")
        self.path = path
        self.per_hour = float(per_hour)
        self.rate = self.per_hour / HOUR
        self._clock = clock
        self._local = threading.local()
        self._reservations = 0

    def _db(self) -> sqlite3.Connection:
        """One connection per thread and process (sqlite3 connections must not cross a fork or a thread)."""
        held = getattr(self._local, "db", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost second of budget after a power cut is harmless
        db.execute("CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, calls REAL NOT NULL, "
                   "updated REAL NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS buckets_updated ON buckets (updated)")
        self._local.db = (os.getpid(), db)
        return db

    def _change(self, client: str, change: Callable[[float], float | None]) -> float:
        """Atomically: read the client's refilled bucket, let ``change`` pick its new content (None: keep)."""
        db = self._db()
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT calls, updated FROM buckets WHERE client = ?", (client,)).fetchone()
            held = self.per_hour if row is None else min(self.per_hour,
                                                         row[0] + max(0.0, now - row[1]) * self.rate)
            new = change(held)
            if new is not None:
                db.execute(_UPSERT, (client, new, now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return held

    def reserve(self, client: str, calls: int) -> Reservation:
        """Take ``calls`` from the client's bucket, or raise BudgetSpent saying when they will be there."""
        needed = min(float(calls), self.per_hour)
        held = self._change(client, lambda held: held - calls if held >= needed else None)
        if held < needed:
            raise BudgetSpent(client, calls, self.per_hour, max(1, math.ceil((needed - held) / self.rate)))
        self._reservations += 1
        if self._reservations % PRUNE_EVERY == 0:
            self.prune()
        return Reservation(client, calls)

    def settle(self, reservation: Reservation, used: int) -> None:
        """Give back what was reserved and not used (or charge what was used beyond it)."""
        if used == reservation.calls:
            return
        self._change(reservation.client, lambda held: min(self.per_hour, held + reservation.calls - used))

    def remaining(self, client: str) -> float:
        """Calls the client may spend now (for tests and the log)."""
        return self._change(client, lambda held: None)

    def prune(self) -> None:
        """Delete buckets idle for an hour: they are full again, as an absent row is."""
        self._db().execute("DELETE FROM buckets WHERE updated < ? AND calls >= 0", (self._clock() - HOUR,))
