"""Seeded statistical generator of GitHub repositories whose shape follows real GitHub.

Calibration (see docs/simulator.md for the numbers):
- stars: discrete Pareto from `min_stars` up, P(stars >= s) = (s / min_stars) ** -alpha, alpha ~ 1.1, which is
  the slope of GitHub's star counts between 10^2 and 10^5 (about 10x fewer repositories per 10x more stars).
  Many repositories share the low star values; with `min_stars=1` about half of them sit at exactly 1 star, so
  one star value holds > 1000 repositories and a collector must split by `created:` dates.
- forks, open issues, size: log-linear in stars with the intercepts, slopes and residual spreads fitted on the
  1,000 genuine search items in ../shared/data (forks ~ 0.14 x stars at the top, issues ~ stars^0.6, ...).
- subscribers, contributors, commits, releases: log-linear in stars through anchor points read off well-known
  repositories (a 50-star project: ~4 watchers, ~3 contributors, ~80 commits; a 200k-star one: ~5,000
  watchers, ~1,500 contributors, ~20,000 commits), with log-normal noise.
- languages and licenses: weights close to the shares of the genuine items and of GitHub's published language
  rankings; ~10% of repositories have no language, ~25% no license, ~6% "other" (NOASSERTION).
- created 2008..snapshot, weighted towards 2013-2023; popular repositories skew older. Ids grow with creation
  time the way GitHub's do (507775 in 2010, ~6e8 in 2023). pushed_at >= created_at, updated_at >= pushed_at.
- owners are shared: a few prolific owners hold many repositories; followers are heavy-tailed and grow with
  the owner's total stars (medians ~3,000 for users with top repositories, as in the shared data).

Everything is drawn from one `random.Random(seed)`: the same seed gives the same world, byte for byte.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from datetime import UTC, datetime

from data_collection.simulator.model import Owner, Repo

LANGUAGES: tuple[tuple[str | None, float], ...] = (
    ("Python", 15.0), ("JavaScript", 13.0), ("TypeScript", 10.0), ("Java", 7.5), ("Go", 5.0),
    ("C++", 5.0), ("C", 3.5), ("C#", 3.5), ("PHP", 3.2), ("Rust", 3.0), ("Jupyter Notebook", 3.0),
    ("Shell", 2.5), ("Ruby", 2.4), ("HTML", 2.4), ("Swift", 2.0), ("Kotlin", 1.8), ("Objective-C", 1.4),
    ("Dart", 1.2), ("CSS", 1.1), ("Vue", 1.1), ("Lua", 0.6), ("Scala", 0.6), ("R", 0.6), ("Haskell", 0.4),
    ("Dockerfile", 0.4), ("Elixir", 0.3), ("Perl", 0.3), ("Vim Script", 0.3), ("TeX", 0.3), ("MATLAB", 0.3),
    ("Clojure", 0.2), ("Julia", 0.2), ("Makefile", 0.2), ("Zig", 0.1), (None, 9.5),
)

LICENSE_WEIGHTS: tuple[tuple[str | None, float], ...] = (
    ("mit", 38.0), (None, 25.0), ("apache-2.0", 13.0), ("gpl-3.0", 6.5), ("other", 6.0),
    ("bsd-3-clause", 2.5), ("agpl-3.0", 1.5), ("gpl-2.0", 1.5), ("bsd-2-clause", 1.0), ("mpl-2.0", 1.0),
    ("unlicense", 1.0), ("cc0-1.0", 1.0), ("lgpl-3.0", 0.5), ("isc", 0.5), ("cc-by-4.0", 0.3),
    ("lgpl-2.1", 0.3), ("wtfpl", 0.3), ("cc-by-sa-4.0", 0.2), ("zlib", 0.1),
)

#: Share of new repositories with >= min_stars created in each year (2026 is partial: up to the snapshot).
YEAR_WEIGHTS: dict[int, float] = {
    2008: 0.5, 2009: 1.0, 2010: 1.5, 2011: 2.0, 2012: 3.0, 2013: 4.0, 2014: 5.0, 2015: 6.0, 2016: 6.5,
    2017: 7.0, 2018: 7.0, 2019: 7.0, 2020: 7.5, 2021: 7.0, 2022: 6.5, 2023: 6.5, 2024: 6.0, 2025: 5.0,
    2026: 3.0,
}

#: (epoch of Jan 1st of the year, GitHub repository id around then): ids grow with creation time.
_REPO_ID_AT = (
    (2008, 1), (2009, 100_000), (2010, 450_000), (2011, 1_200_000), (2012, 3_000_000), (2013, 7_300_000),
    (2014, 15_400_000), (2015, 28_600_000), (2016, 48_700_000), (2017, 77_000_000), (2018, 115_800_000),
    (2019, 163_000_000), (2020, 231_000_000), (2021, 325_000_000), (2022, 443_000_000), (2023, 583_000_000),
    (2024, 737_000_000), (2025, 910_000_000), (2026, 1_100_000_000), (2027, 1_300_000_000),
)
_USER_ID_AT = (
    (2007, 1), (2008, 2_000), (2010, 200_000), (2012, 1_200_000), (2014, 6_000_000), (2016, 16_000_000),
    (2018, 35_000_000), (2020, 60_000_000), (2022, 95_000_000), (2024, 150_000_000), (2026, 220_000_000),
    (2027, 250_000_000),
)

_WORDS = (
    "fast", "json", "http", "api", "cli", "web", "data", "ml", "deep", "neural", "graph", "stream", "async",
    "react", "vue", "node", "py", "go", "rust", "kit", "lab", "engine", "core", "lite", "micro", "mini",
    "simple", "awesome", "open", "auto", "smart", "cloud", "edge", "chain", "vision", "text", "image",
    "audio", "video", "game", "bot", "chat", "parser", "render", "build", "test", "lint", "docs", "queue",
    "cache", "store", "db", "sql", "orm", "net", "proxy", "router", "server", "client", "sdk", "ui",
    "theme", "icons", "charts", "maps", "geo", "time", "crypto", "secure", "auth", "log", "trace",
    "metrics", "monitor", "deploy", "ops", "infra", "config", "flow", "task", "job", "batch", "pipe",
    "spark", "torch", "tensor", "model", "train", "infer", "agent", "llm", "prompt", "notes", "blog",
    "site", "static", "wiki", "book", "guide", "tutorial", "examples", "demo", "starter", "template",
    "boilerplate", "tools", "utils",
)

_TOPICS = (
    "machine-learning", "deep-learning", "python", "javascript", "typescript", "react", "nodejs", "golang",
    "rust", "java", "android", "ios", "docker", "kubernetes", "api", "cli", "web", "framework", "library",
    "database", "devops", "security", "linux", "macos", "windows", "game", "visualization", "data-science",
    "nlp", "computer-vision", "llm", "awesome-list", "tutorial", "hacktoberfest", "open-source",
    "automation", "testing", "monitoring", "blockchain", "cryptocurrency", "frontend", "backend", "vue",
    "angular", "css", "html", "graphql", "rest-api", "microservices", "serverless", "cloud", "aws",
    "terminal", "productivity", "education", "ai", "chatbot", "self-hosted",
)

_SYLLABLES = (
    "ka", "ri", "to", "mo", "na", "lu", "xe", "zo", "pi", "vo", "de", "la", "mi", "su", "ra", "ne", "co",
    "ta", "be", "ji", "fa", "go", "hu", "ke", "li", "ma", "no", "pa", "qu", "se", "ti", "vu", "wa", "ya",
)

_ADJ = (
    "Fast", "Simple", "Modern", "Tiny", "Powerful", "Lightweight", "Minimal", "Scalable", "Friendly",
    "Open",
)
_NOUN = (
    "library", "framework", "toolkit", "engine", "client", "server", "parser", "collection", "guide",
    "implementation", "tool", "plugin",
)


@functools.cache
def _year_epoch(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


@functools.cache
def _points(table: tuple[tuple[int, int], ...]) -> tuple[list[tuple[int, int]], list[int]]:
    points = [(_year_epoch(y), v) for y, v in table]
    return points, [p[0] for p in points]


def _interp_id(table: tuple[tuple[int, int], ...], epoch: int) -> int:
    points, xs = _points(table)
    i = max(1, min(len(points) - 1, bisect.bisect_right(xs, epoch)))
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return max(1, int(y0 + (y1 - y0) * (epoch - x0) / (x1 - x0)))


class _Weighted:
    """Fast repeated weighted choice (cumulative weights + bisect)."""

    def __init__(self, pairs: tuple[tuple[object, float], ...] | list[tuple[object, float]]) -> None:
        self.values = [v for v, _ in pairs]
        self.cum: list[float] = []
        total = 0.0
        for _, w in pairs:
            total += w
            self.cum.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> object:
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.total)]


def _choice(rng: random.Random, seq: tuple[str, ...] | list[str]) -> str:
    """rng.choice without its overhead (called ~15 times per repository)."""
    return seq[int(rng.random() * len(seq))]


def _loglinear(rng: random.Random, stars: int, a: float, b: float, sd: float) -> float:
    """exp(a + b*ln(stars) + N(0, sd)): the shape of every count that grows with popularity."""
    return math.exp(a + b * math.log(max(stars, 1)) + rng.gauss(0.0, sd))


#: Above this many stars GitHub's tail steepens: P(S >= s) falls as s**-2 (fitted on the 1,000 genuine top
#: repositories: median 1.41 x and 90th percentile 3.2 x their minimum, which is exactly alpha = 2).
TOP_BREAK = 10_000
TOP_ALPHA = 2.0


def sample_stars(rng: random.Random, min_stars: int, alpha: float, cap: int = 600_000) -> int:
    """Discrete two-piece Pareto from min_stars up: exponent `alpha` below TOP_BREAK, TOP_ALPHA above."""
    base = max(min_stars, 1)
    brk = max(TOP_BREAK, base)
    p_break = (brk / base) ** -alpha  # P(S >= break)
    while True:  # resample beyond the cap rather than pile repositories up at it
        u = 1.0 - rng.random()  # (0, 1]
        value = base * u ** (-1.0 / alpha) if u > p_break else brk * (u / p_break) ** (-1.0 / TOP_ALPHA)
        stars = int(value) + (min_stars - base)
        if stars <= max(cap, min_stars):
            return stars


def _login(rng: random.Random, taken: set[str]) -> str:
    while True:
        parts = [_choice(rng, _SYLLABLES) for _ in range(rng.randint(2, 4))]
        login = "".join(parts)
        if rng.random() < 0.3:
            login += str(rng.randint(1, 999))
        elif rng.random() < 0.2:
            login += "-" + _choice(rng, _WORDS)
        if login not in taken:
            taken.add(login)
            return login


def _repo_name(rng: random.Random) -> str:
    words = [_choice(rng, _WORDS) for _ in range(_choice(rng, (1, 2, 2, 2, 3)))]
    sep = _choice(rng, ("-", "-", "-", "_", "", "."))
    name = sep.join(words)
    if rng.random() < 0.15:
        name = name.capitalize() if sep else name.upper()
    return name


def _created(rng: random.Random, years: _Weighted, snapshot: int) -> int:
    year = int(years.pick(rng))  # type: ignore[arg-type]
    start = _year_epoch(year)
    end = min(_year_epoch(year + 1), snapshot - 86_400)
    return start + int(rng.random() * max(1, end - start))


def generate(n: int, seed: int, *, min_stars: int = 50, alpha: float = 1.1,
             snapshot: datetime | None = None) -> list[Repo]:
    """`n` repositories (forks and archived ones included), deterministic for `seed`."""
    from data_collection.simulator.config import DEFAULT_SNAPSHOT

    rng = random.Random(seed)
    snap = int((snapshot or DEFAULT_SNAPSHOT).timestamp())
    languages = _Weighted(LANGUAGES)
    licenses = _Weighted(LICENSE_WEIGHTS)
    years = _Weighted([(y, w) for y, w in YEAR_WEIGHTS.items() if _year_epoch(y) < snap])
    topics_by_language: dict[str | None, list[str]] = {}

    # Owners: a pool smaller than the repositories; low indices are prolific (u**1.6 concentrates on them).
    n_owners = max(1, int(n * 0.65))
    logins: set[str] = set()
    owner_logins = [_login(rng, logins) for _ in range(n_owners)]

    drafts = []
    for _ in range(n):
        stars = sample_stars(rng, min_stars, alpha)
        created = _created(rng, years, snap)
        if stars > 1000:  # popular repositories had time to become so: skew older
            created = min(created, _created(rng, years, snap))
        owner_index = int(n_owners * rng.random() ** 1.6)
        drafts.append((stars, created, owner_index))

    # Owner figures depend on the stars they hold.
    owner_stars = [0] * n_owners
    owner_repos = [0] * n_owners
    owner_first = [snap] * n_owners
    for stars, created, oi in drafts:
        owner_stars[oi] += stars
        owner_repos[oi] += 1
        owner_first[oi] = min(owner_first[oi], created)
    owners: list[Owner | None] = [None] * n_owners

    def owner_of(oi: int) -> Owner:
        found = owners[oi]
        if found is None:
            total = max(owner_stars[oi], 1)
            # Organizations hold a growing share of popular projects (63% of the genuine top 1,000).
            org = rng.random() < min(0.7, 0.3 + 0.1 * math.log10(max(1.0, total / 50)))
            followers = int(_loglinear(rng, total, math.log(5.0) - (0.7 if org else 0.0), 0.6, 1.0))
            created = owner_first[oi] - int(rng.random() * 3 * 365 * 86_400)
            created = max(created, _year_epoch(2007) + 86_400 * 300)
            found = Owner(
                login=owner_logins[oi],
                id=0,  # assigned below, growing with creation time
                type="Organization" if org else "User",
                followers=followers,
                following=0 if org else int(_loglinear(rng, total, 1.5, 0.2, 1.2)),
                public_repos=owner_repos[oi] + int(_loglinear(rng, total, 1.5, 0.25, 1.0)),
                created_at=created,
                name=owner_logins[oi].capitalize() if rng.random() < 0.7 else None,
            )
            owners[oi] = found
        return found

    repos: list[Repo] = []
    names_taken: set[str] = set()
    for stars, created, oi in drafts:
        owner = owner_of(oi)
        name = _repo_name(rng)
        while f"{owner.login}/{name}".lower() in names_taken:
            name = f"{name}-{rng.randint(2, 99)}"
        names_taken.add(f"{owner.login}/{name}".lower())
        language = languages.pick(rng)
        license_key = licenses.pick(rng)
        # Popular projects are more often licensed (10% unlicensed among the genuine top 1,000).
        if license_key is None and rng.random() < min(0.7, 0.15 * math.log10(max(1.0, stars / 50))):
            license_key = licenses.pick(rng)
        pool = topics_by_language.get(language)  # type: ignore[arg-type]
        if pool is None:
            pool = list(_TOPICS)
            if language:
                pool += [str(language).lower().replace(" ", "-").replace("+", "p").replace("#", "sharp")] * 6
            topics_by_language[language] = pool  # type: ignore[index]
        n_topics = 0 if rng.random() < 0.45 - min(0.3, 0.04 * math.log(max(stars, 1))) else min(
            20, 1 + int(rng.expovariate(1 / (2.0 + 1.6 * math.log10(max(stars, 1)))))
        )
        topics = tuple(sorted(set(_choice(rng, pool) for _ in range(n_topics))))

        empty = rng.random() < 0.003
        age_days = max(1.0, (snap - created) / 86_400)
        # Active repositories were pushed recently; abandoned ones long ago (but never before creation).
        idle = rng.expovariate(1 / 40.0) if rng.random() < 0.6 else rng.random() * age_days
        pushed = created if empty else max(created, snap - int(min(idle, age_days) * 86_400))
        updated = max(pushed, snap - int(rng.expovariate(1 / (3.0 + 3000.0 / max(stars, 1))) * 86_400))
        updated = min(updated, snap)

        forks = int(_loglinear(rng, stars, math.log(0.14), 1.0, 0.75))
        commits = 0 if empty else max(1, int(_loglinear(rng, stars, 1.78, 0.666, 1.1)))
        contributors = 0 if empty else max(1, min(commits, int(_loglinear(rng, stars, -1.83, 0.75, 0.9))))
        anon = int(contributors * rng.random() * 0.15) if contributors > 5 else 0
        releases = 0 if empty else max(0, int(_loglinear(rng, stars, -0.5, 0.35, 1.2)) - 1)
        subscribers = max(1, int(_loglinear(rng, stars, -1.97, 0.86, 0.5)))
        archived = rng.random() < 0.03
        repos.append(Repo(
            id=0,
            owner=owner,
            name=name,
            description=None if rng.random() < 0.06 else (
                f"{_choice(rng, _ADJ)} {_choice(rng, _WORDS)} {_choice(rng, _NOUN)}"
                + (f" for {language}" if language and rng.random() < 0.4 else "")
            ),
            homepage=(f"https://{owner.login}.github.io/{name}" if rng.random() < 0.3
                      else ("" if rng.random() < 0.5 else None)),
            language=language,  # type: ignore[arg-type]
            license_key=license_key,  # type: ignore[arg-type]
            topics=topics,
            stargazers_count=stars,
            forks_count=forks,
            open_issues_count=0 if not rng.random() < 0.95 else int(
                _loglinear(rng, stars, -1.29, 0.61, 1.75)),
            size=0 if empty else int(_loglinear(rng, stars, 4.8, 0.51, 2.2)),
            created_at=created,
            updated_at=updated,
            pushed_at=pushed,
            has_issues=rng.random() < 0.95,
            has_projects=rng.random() < 0.75,
            has_wiki=rng.random() < 0.65,
            has_pages=rng.random() < 0.12 + 0.02 * math.log10(max(stars, 1)),
            has_discussions=rng.random() < 0.05 + 0.07 * math.log10(max(stars, 1)),
            archived=archived,
            fork=rng.random() < 0.01,
            is_template=rng.random() < 0.01,
            default_branch=(("master" if created < 1_601_510_400 else "main") if rng.random() < 0.9
                            else _choice(rng, ("develop", "dev", "gh-pages", "trunk"))),
            subscribers_count=subscribers,
            network_count=forks,
            contributors_count=contributors,
            anon_contributors=anon,
            commits_count=commits,
            releases_count=releases,
        ))

    _assign_ids(repos, [o for o in owners if o is not None])
    return repos


def _assign_ids(repos: list[Repo], owners: list[Owner]) -> None:
    """Ids that grow with creation time and never collide (GitHub's are sequential)."""
    last = 0
    for repo in sorted(repos, key=lambda r: r.created_at):
        repo.id = last = max(last + 1, _interp_id(_REPO_ID_AT, repo.created_at))
    last = 0
    for owner in sorted(owners, key=lambda o: o.created_at):
        owner.id = last = max(last + 1, _interp_id(_USER_ID_AT, owner.created_at))
