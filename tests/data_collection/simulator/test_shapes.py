"""The simulator's JSON has the shapes of the genuine GitHub answers in ../shared/data, and serves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from data_collection.simulator import SimulatorServer
from data_collection.simulator.pages import PagesError, expand, load_pages
from tests.support import RAW_API_PAGES, bearer, require_shared_data

pytestmark = pytest.mark.shared_data


def _genuine_items() -> list[dict[str, Any]]:
    require_shared_data(RAW_API_PAGES)
    items = []
    for path in sorted(RAW_API_PAGES.glob("*.json")):
        items += json.loads(path.read_text())["items"]
    return items


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def test_search_items_have_genuine_keys_nesting_and_types(big_sim: SimulatorServer,
                                                          http: requests.Session) -> None:
    genuine = _genuine_items()
    real = genuine[0]
    kinds: dict[str, set[str]] = {}
    for g in genuine:
        for key, value in g.items():
            kinds.setdefault(key, set()).add(_kind(value))
    items = http.get(f"{big_sim.url}/search/repositories", params={"q": "stars:>=50", "per_page": 100},
                     headers=bearer()).json()["items"]
    # a licensed, an unlicensed, a user- and an organization-owned item are all shaped alike
    assert any(i["license"] is None for i in items) and any(i["license"] for i in items)
    for item in items:
        assert list(item) == list(real)  # same keys, same order
        assert list(item["owner"]) == list(real["owner"])
        assert list(item["permissions"]) == list(real["permissions"])
        if item["license"] is not None:
            assert list(item["license"]) == list(real["license"])
        for key, value in item.items():
            nullable = {"null"} if key in ("description", "homepage", "language", "license") else set()
            assert _kind(value) in kinds[key] | nullable, key
        assert item["watchers_count"] == item["watchers"] == item["stargazers_count"]
        assert item["forks"] == item["forks_count"] and item["open_issues"] == item["open_issues_count"]
        assert item["created_at"].endswith("Z") and len(item["created_at"]) == 20
        assert item["url"] == f"{big_sim.url}/repos/{item['full_name']}"


def test_generated_top_matches_the_genuine_top() -> None:
    """Generated from the genuine minimum up, 1,000 repositories look like the genuine top 1,000."""
    from data_collection.simulator.generator import generate

    real = list({i["id"]: i for i in _genuine_items()}.values())
    gen = generate(len(real), 3, min_stars=min(i["stargazers_count"] for i in real))

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    for name, real_values, gen_values in (
        ("stars", [i["stargazers_count"] for i in real], [r.stargazers_count for r in gen]),
        ("forks/stars", [i["forks_count"] / i["stargazers_count"] for i in real],
         [r.forks_count / r.stargazers_count for r in gen]),
        ("forks", [i["forks_count"] for i in real], [r.forks_count for r in gen]),
    ):
        assert abs(median(gen_values) / median(real_values) - 1) < 0.2, name
    org_real = sum(i["owner"]["type"] == "Organization" for i in real) / len(real)
    org_gen = sum(r.owner.type == "Organization" for r in gen) / len(gen)
    assert abs(org_real - org_gen) < 0.1
    mit_real = sum((i["license"] or {}).get("key") == "mit" for i in real) / len(real)
    assert abs(mit_real - sum(r.license_key == "mit" for r in gen) / len(gen)) < 0.1


def test_genuine_pages_are_served_deduplicated_with_synthesized_counts(http: requests.Session) -> None:
    genuine = _genuine_items()
    pages = sorted(str(p) for p in RAW_API_PAGES.glob("*.json"))
    unique = {i["id"]: i for i in genuine}
    assert [str(p) for p in expand([RAW_API_PAGES])] == pages  # a directory stands for its pages
    with SimulatorServer(pages=tuple(pages), tokens=("tok-a",), seed=5) as sim:
        assert len(sim.store) == len(unique) == 1000
        top = max(unique.values(), key=lambda i: i["stargazers_count"])
        first = http.get(f"{sim.url}/search/repositories",
                         params={"q": "stars:>=1", "sort": "stars", "per_page": 5}, headers=bearer()).json()
        assert first["total_count"] == 1000
        served = first["items"][0]
        assert served["full_name"] == top["full_name"]
        assert json.loads(json.dumps(served).replace(sim.url, "https://api.github.com")) == top  # as sent
        assert served["url"] == f"{sim.url}/repos/{top['full_name']}"  # re-pointed at the simulator
        full = http.get(f"{sim.url}/repos/{top['full_name']}", headers=bearer()).json()
        assert full["subscribers_count"] >= 1 and "score" not in full
        truth = sim.truth(top["full_name"])
        commits = http.get(f"{sim.url}/repos/{top['full_name']}/commits?per_page=1", headers=bearer())
        assert int(commits.links["last"]["url"].rsplit("page=", 1)[1]) == truth["commits_count"]
        python = http.get(f"{sim.url}/search/repositories", params={"q": "stars:>=1 language:python"},
                          headers=bearer()).json()["total_count"]
        assert python == sum(1 for i in unique.values() if i["language"] == "Python")


def test_bad_pages_give_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"message": "Not Found"}')
    cases = ((missing, "not found"), (broken, "not readable JSON"), (wrong, "no 'items' list"),
             (tmp_path / "emptydir", "no \\*.json search page"))
    (tmp_path / "emptydir").mkdir()
    for path, words in cases:
        with pytest.raises(PagesError, match=words) as info:
            load_pages([path])
        assert "\n" not in str(info.value)
