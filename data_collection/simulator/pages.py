"""Serve genuine GitHub search API pages (`--pages PATH...`) instead of generated repositories.

Items are deduplicated by `id` (the 20 pages in ../shared/data hold 2,000 items but 1,000 repositories) and
served exactly as GitHub sent them (URLs re-pointed at the simulator). Search pages carry no enrichment, so
`subscribers_count`, contributors, commits, releases and owner followers are SYNTHESIZED from the repository's
stars with the generator's log-linear models, seeded per repository id: consistent across endpoints and runs,
but not the real values.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from data_collection.simulator.generator import _loglinear
from data_collection.simulator.model import Owner, Repo


class PagesError(ValueError):
    """A --pages file that is not a GitHub search answer."""


def _epoch(text: str | None) -> int:
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the `*.json` files in it (sorted)."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise PagesError(f"no *.json search page in directory {p}")
            out += found
        else:
            out.append(p)
    return out


def _items(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    items: dict[int, dict[str, Any]] = {}
    for p in expand(paths):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PagesError(f"search page not found: {p}") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise PagesError(f"search page {p} is not readable JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise PagesError(f"search page {p} has no 'items' list (not a /search/repositories answer)")
        for item in data["items"]:
            if isinstance(item, dict) and "id" in item and "full_name" in item:
                items.setdefault(int(item["id"]), item)
    return list(items.values())


def load_pages(paths: Iterable[str | Path], seed: int = 0) -> list[Repo]:
    raw_items = _items(paths)
    owner_stars: dict[str, int] = {}
    for item in raw_items:
        login = item["owner"]["login"]
        owner_stars[login] = owner_stars.get(login, 0) + int(item.get("stargazers_count") or 0)
    owners: dict[str, Owner] = {}
    repos: list[Repo] = []
    for item in raw_items:
        o = item["owner"]
        owner = owners.get(o["login"])
        if owner is None:
            rng = random.Random(seed * 1_000_003 + int(o["id"]))
            total = max(owner_stars[o["login"]], 1)
            org = o.get("type") == "Organization"
            owner = owners[o["login"]] = Owner(
                login=o["login"], id=int(o["id"]), type=o.get("type", "User"),
                followers=int(_loglinear(rng, total, math.log(5.0) - (0.7 if org else 0.0), 0.6, 1.0)),
                following=0 if org else int(_loglinear(rng, total, 1.5, 0.2, 1.2)),
                public_repos=int(_loglinear(rng, total, 1.5, 0.25, 1.0)) + 1,
                created_at=max(0, _epoch(item.get("created_at")) - 86_400 * 200),
                name=o["login"],
            )
        rng = random.Random(seed * 1_000_003 + int(item["id"]))
        stars = int(item.get("stargazers_count") or 0)
        empty = int(item.get("size") or 0) == 0 and rng.random() < 0.5
        commits = 0 if empty else max(1, int(_loglinear(rng, stars, 1.78, 0.666, 1.1)))
        contributors = 0 if empty else max(1, min(commits, int(_loglinear(rng, stars, -1.83, 0.75, 0.9))))
        lic = item.get("license") or None
        repos.append(Repo(
            id=int(item["id"]),
            owner=owner,
            name=item["name"],
            description=item.get("description"),
            homepage=item.get("homepage"),
            language=item.get("language"),
            license_key=lic.get("key") if lic else None,
            topics=tuple(item.get("topics") or ()),
            stargazers_count=stars,
            forks_count=int(item.get("forks_count") or 0),
            open_issues_count=int(item.get("open_issues_count") or 0),
            size=int(item.get("size") or 0),
            created_at=_epoch(item.get("created_at")),
            updated_at=_epoch(item.get("updated_at")),
            pushed_at=_epoch(item.get("pushed_at")),
            has_issues=bool(item.get("has_issues")),
            has_projects=bool(item.get("has_projects")),
            has_wiki=bool(item.get("has_wiki")),
            has_pages=bool(item.get("has_pages")),
            has_discussions=bool(item.get("has_discussions")),
            archived=bool(item.get("archived")),
            fork=bool(item.get("fork")),
            is_template=bool(item.get("is_template")),
            default_branch=item.get("default_branch") or "main",
            subscribers_count=max(1, int(_loglinear(rng, stars, -1.97, 0.86, 0.5))),
            network_count=int(item.get("forks_count") or 0),
            contributors_count=contributors,
            anon_contributors=int(contributors * rng.random() * 0.15) if contributors > 5 else 0,
            commits_count=commits,
            releases_count=0 if empty else max(0, int(_loglinear(rng, stars, -0.5, 0.35, 1.2)) - 1),
            raw=item,
        ))
    held = Counter(r.owner.login for r in repos)
    for owner in owners.values():
        owner.public_repos = max(owner.public_repos, held[owner.login])
    return repos
