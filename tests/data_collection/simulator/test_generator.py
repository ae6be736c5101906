"""The seeded generator: deterministic, and shaped like GitHub (heavy tail, correlations, dates, owners)."""

from __future__ import annotations

from collections import Counter
from statistics import correlation

from data_collection.simulator.generator import LANGUAGES, generate
from data_collection.simulator.render import LICENSES


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, i in enumerate(order):
            out[i] = float(rank)
        return out

    return correlation(ranks(xs), ranks(ys))


def test_same_seed_same_world_other_seed_other_world() -> None:
    a = [r.truth() | {"created": r.created_at, "topics": r.topics} for r in generate(1500, 42)]
    b = [r.truth() | {"created": r.created_at, "topics": r.topics} for r in generate(1500, 42)]
    c = [r.truth() for r in generate(1500, 43)]
    assert a == b
    assert [x["full_name"] for x in a] != [x["full_name"] for x in c]


def test_stars_heavy_tailed_from_the_minimum_up() -> None:
    repos = generate(5000, 1, min_stars=50, alpha=1.1)
    stars = sorted(r.stargazers_count for r in repos)
    assert stars[0] == 50
    # Pareto: P(S >= 10*m) = 10**-alpha ~ 8%; P(S >= 100*m) ~ 0.6%
    assert 0.05 < sum(s >= 500 for s in stars) / len(stars) < 0.11
    assert 0.002 < sum(s >= 5000 for s in stars) / len(stars) < 0.015
    assert stars[-1] > 10_000
    assert stars[len(stars) // 2] < 120  # median near the bottom


def test_one_star_value_can_hold_more_than_the_search_cap() -> None:
    repos = generate(5000, 2, min_stars=1)
    value, count = Counter(r.stargazers_count for r in repos).most_common(1)[0]
    assert value == 1 and count > 1000


def test_counts_grow_with_stars() -> None:
    repos = [r for r in generate(3000, 5) if not r.empty]
    stars = [float(r.stargazers_count) for r in repos]
    # Tighter for forks/watchers, looser for the noisy ones (issues vary 1.75 log-units at equal stars in the
    # genuine data).
    floors = {"forks_count": 0.5, "subscribers_count": 0.6, "contributors_count": 0.4, "commits_count": 0.25,
              "open_issues_count": 0.15, "releases_count": 0.15}
    for field, floor in floors.items():
        rho = _spearman(stars, [float(getattr(r, field)) for r in repos])
        assert rho > floor, (field, rho)
    assert all(r.contributors_count <= r.commits_count for r in repos)
    assert all(r.anon_contributors <= r.contributors_count for r in repos)
    assert all(r.subscribers_count >= 1 for r in repos)


def test_dates_ids_names_and_owners_are_consistent() -> None:
    repos = generate(3000, 9)
    assert len({r.full_name.lower() for r in repos}) == len(repos)
    assert len({r.id for r in repos}) == len(repos)
    by_created = sorted(repos, key=lambda r: r.created_at)
    assert [r.id for r in by_created] == sorted(r.id for r in repos)  # ids grow with time, as GitHub's
    lo, hi = 1199145600, 1793491200  # 2008-01-01 .. 2026-11-01
    for r in repos:
        assert lo <= r.created_at <= r.pushed_at <= r.updated_at <= hi
    owners = Counter(r.owner.login for r in repos)
    assert len(owners) < len(repos) * 0.8 and owners.most_common(1)[0][1] >= 5
    types = Counter(r.owner.type for r in {r.owner.login: r for r in repos}.values())
    assert set(types) == {"User", "Organization"}
    followers = sorted(r.owner.followers for r in repos)
    assert followers[-1] > 20 * max(1, followers[len(followers) // 2])  # heavy-tailed


def test_languages_licenses_topics_and_flags_look_like_github() -> None:
    repos = generate(5000, 4)
    langs = Counter(r.language for r in repos)
    top = [name for name, _ in langs.most_common(4)]
    assert {"Python", "JavaScript"} <= set(top)
    assert 0.05 < langs[None] / len(repos) < 0.15
    assert set(langs) <= {name for name, _ in LANGUAGES}
    lic = Counter(r.license_key for r in repos)
    assert lic.most_common(1)[0][0] == "mit"
    assert 0.18 < lic[None] / len(repos) < 0.32 and lic["other"] > 0
    assert set(lic) - {None} <= set(LICENSES)
    assert 0.2 < sum(1 for r in repos if not r.topics) / len(repos) < 0.6
    assert max(len(r.topics) for r in repos) <= 20
    for flag in ("fork", "archived", "is_template"):
        share = sum(getattr(r, flag) for r in repos) / len(repos)
        assert 0.001 < share < 0.06, flag
    empty = [r for r in repos if r.empty]
    assert 0 < len(empty) < 0.01 * len(repos)  # rare (0.3%), but they exist: commits 409, contributors 204
    assert all(r.size == 0 and r.contributors_count == 0 and r.releases_count == 0 for r in empty)
