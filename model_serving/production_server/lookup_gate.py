"""What a prediction request passes before GitHub is asked: the lookup door and the client's budget.

Shared by the form (``views.py``) and the JSON API (``api.py``), so both doors follow one rule:

1. Names answered locally (the served model's dataset, unless ``fresh``; the lookup cache) need nothing.
2. A request that must ask GitHub is served at the lookup door (``/api/v1/lookup``, ``/lookup``), which
   nginx throttles with its own ``limit_req`` zone. nginx cannot read a body, so it cannot tell a lookup
   from a request describing repositories by hand: when such a request reaches the general door
   (``/api/v1/predict``, ``/predict``) through nginx, it is answered ``307 Temporary Redirect`` to the
   lookup door, which browsers and HTTP libraries follow with the same method and body. Without nginx in
   front (tests, ``make serve`` without it) there is no zone to pass, and both doors answer alike.
3. The client's budget of GitHub calls (``budget.py``) must hold the most the lookup can cost; else
   ``BudgetSpent`` (the API's 429 with ``Retry-After``, a message on the form). Afterwards the budget is
   charged with the calls really made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from flask import Flask, request

from model_serving.production_server import lookup as lookup_module
from model_serving.production_server.budget import BudgetSpent, GitHubBudget
from model_serving.production_server.client_address import client_address, via_proxy
from model_serving.production_server.inputs import RequestItem
from model_serving.production_server.known import KnownRepositories
from model_serving.production_server.prediction import Outcome, predict

#: The general door of each kind -> its lookup door (nginx.conf.j2 gives the latter the lookup zone).
LOOKUP_DOORS: Final = {"/api/v1/predict": "/api/v1/lookup", "/predict": "/lookup"}

__all__ = ["BudgetSpent", "UseLookupDoor", "budget_for", "lookup_for", "predict_guarded"]


class UseLookupDoor(Exception):
    """This request must ask GitHub and came through nginx's general door: send it to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(f"this request looks repositories up on GitHub: send it to {location}")
        self.location = location


def _per_process(app: Flask, key: str, make: object) -> object:
    """One object per app and process (sockets and SQLite connections never cross a gunicorn fork)."""
    slot = app.extensions.get(key)
    if slot is None or slot[0] != os.getpid():
        # setdefault: two threads racing on the first request end up sharing one object.
        slot = app.extensions.setdefault(key, (os.getpid(), make()))  # type: ignore[operator]
        if slot[0] != os.getpid():
            slot = app.extensions[key] = (os.getpid(), make())  # type: ignore[operator]
    return slot[1]


def lookup_for(app: Flask) -> lookup_module.RepositoryLookup:
    """This app's lookup in this process: GitHub client, cache and the served dataset's names."""
    settings = app.config["STARGAZER"]

    def make() -> lookup_module.RepositoryLookup:
        known = KnownRepositories(settings.model_dir, settings.deploy_public_key,
                                  require_signature=settings.require_signature)
        return lookup_module.RepositoryLookup(
            settings.github,
            ttl=settings.lookup_ttl,
            negative_ttl=settings.lookup_negative_ttl,
            cache_size=settings.lookup_cache_size,
            threads=settings.lookup_threads,
            timeout=settings.lookup_timeout,
            known=known,
        )

    return _per_process(app, "stargazer_lookup", make)  # type: ignore[return-value]


def budget_for(app: Flask) -> GitHubBudget:
    """This app's budget store (every process of the host opens the same SQLite file)."""
    settings = app.config["STARGAZER"]
    path = settings.github_budget_db
    if path is None:  # settings built by hand (tests): a file of this app alone
        if "stargazer_budget_file" not in app.extensions:
            app.extensions.setdefault("stargazer_budget_file",
                                      Path(tempfile.mkdtemp(prefix="stargazer-budget-")) / "budget.sqlite3")
        path = app.extensions["stargazer_budget_file"]
    return _per_process(app, "stargazer_budget",  # type: ignore[return-value]
                        lambda: GitHubBudget(path, settings.github_budget_per_hour))


def predict_guarded(app: Flask, items: Sequence[RequestItem], *, fresh: bool) -> Outcome:
    """``prediction.predict`` behind the door and budget rules (module docstring); raises UseLookupDoor,
    BudgetSpent or PredictionError."""
    settings = app.config["STARGAZER"]
    lookup = lookup_for(app)
    names = [item.full_name for item in items if item.lookup and item.full_name]
    asking = lookup.needs_github(names, fresh=fresh) if names else []
    reservation = None
    budget = None
    if asking:
        door = LOOKUP_DOORS.get(request.path)
        if door is not None and via_proxy(request.remote_addr, request.headers, settings.trusted_proxies):
            raise UseLookupDoor(door)
        client = client_address(request.remote_addr, request.headers, settings.trusted_proxies)
        budget = budget_for(app)
        reservation = budget.reserve(client, lookup.estimate(len(asking)))
    meter = lookup_module.CallMeter()
    try:
        return predict(items, settings, lookup, fresh=fresh, meter=meter)
    finally:
        if budget is not None and reservation is not None:
            budget.settle(reservation, meter.calls)
