"""Parsing of GitHub repository search queries (`q=`) into a filter.

Supported as GitHub does: ranges on `stars:`, `forks:`, `size:`, `topics:` (numbers) and `created:`, `pushed:`
(dates `YYYY-MM-DD` or times `YYYY-MM-DDTHH:MM:SSZ`/`+00:00`) in the forms `N`, `>N`, `>=N`, `<N`, `<=N`,
`N..M`, `N..*`, `*..M`; `language:` (repeatable = OR, quoted names like `"Jupyter Notebook"`, `-language:` to
exclude), `license:`, `topic:`, `user:`/`org:`, `repo:`, `fork:true|only|false` (forks are excluded unless
asked for, as on GitHub), `archived:`, `is:public|private|template|archived`, `template:`, `mirror:`; bare
words match name, description and topics. Other qualifiers (`in:`, `good-first-issues:` ...) are accepted and
ignored, as GitHub ignores what it cannot apply.

A malformed range on a known qualifier (`stars:>abc`) raises QueryError: GitHub would silently search the
text, which hides the client's bug; a 422 names it.

Every range is normalized to a half-open interval [lo, hi): a date qualifier covers the whole day, so
`created:<=2020-01-31` includes 2020-01-31T23:59:59Z and `created:>2020-01-31` starts on February 1st.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from data_collection.simulator.model import Repo

INF = float("inf")

NUMERIC = {"stars": "stargazers_count", "forks": "forks_count", "size": "size", "topics": None}
DATES = {"created": "created_at", "pushed": "pushed_at"}

_TOKEN = re.compile(r'(-?)([A-Za-z_-]+):("[^"]*"|\S+)|"([^"]*)"|(\S+)')
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:?\d{2})?)?$")


class QueryError(ValueError):
    """A query GitHub would refuse (or that is surely a client bug): answered with 422."""


@dataclass(frozen=True)
class Query:
    ranges: tuple[tuple[str, float, float], ...] = ()  # (field, lo, hi) half-open
    languages: frozenset[str] = frozenset()  # lower-case; empty = any
    not_languages: frozenset[str] = frozenset()
    licenses: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    repos: frozenset[str] = frozenset()
    fork: str = "false"  # "false" (default: excluded) | "true" (included) | "only"
    archived: bool | None = None
    template: bool | None = None
    private: bool = False
    mirror: bool | None = None
    words: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def star_bounds(self) -> tuple[float, float]:
        lo, hi = 0.0, INF
        for name, a, b in self.ranges:
            if name == "stargazers_count":
                lo, hi = max(lo, a), min(hi, b)
        return lo, hi

    def matches(self, repo: Repo) -> bool:
        """Every condition except the star range (the index bisects on stars)."""
        if self.private:
            return False
        if self.fork == "false" and repo.fork:
            return False
        if self.fork == "only" and not repo.fork:
            return False
        for name, lo, hi in self.ranges:
            if name == "stargazers_count":
                continue
            value = len(repo.topics) if name == "topics" else getattr(repo, name)
            if not lo <= value < hi:
                return False
        lang = (repo.language or "").lower().replace(" ", "-")
        if self.languages and lang not in self.languages:
            return False
        if lang and lang in self.not_languages:
            return False
        if self.licenses and (repo.license_key or "") not in self.licenses:
            return False
        if self.topics and not self.topics.issubset(repo.topics):
            return False
        if self.owners and repo.owner.login.lower() not in self.owners:
            return False
        if self.repos and repo.full_name.lower() not in self.repos:
            return False
        if self.archived is not None and repo.archived != self.archived:
            return False
        if self.template is not None and repo.is_template != self.template:
            return False
        if self.mirror is True:
            return False
        if self.words:
            text = " ".join((repo.name, repo.description or "", " ".join(repo.topics))).lower()
            if not all(w in text for w in self.words):
                return False
        return True


def _number(text: str, what: str) -> tuple[float, float]:
    if not re.fullmatch(r"\d+", text):
        raise QueryError(f"invalid number {text!r} in {what}")
    value = int(text)
    return value, value + 1


def _date(text: str, what: str) -> tuple[float, float]:
    m = _DATE.match(text)
    if not m:
        raise QueryError(f"invalid date {text!r} in {what}")
    year, month, day, hour, minute, second, tz = m.groups()
    try:
        if hour is None:
            start = datetime(int(year), int(month), int(day), tzinfo=UTC).timestamp()
            return start, start + 86_400
        moment = datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}"
            + ("+00:00" if tz in (None, "Z") else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"))
        )
    except ValueError as exc:
        raise QueryError(f"invalid date {text!r} in {what}") from exc
    start = moment.timestamp()
    return start, start + (1 if second is not None else 60)


def parse_range(value: str, what: str, dates: bool) -> tuple[float, float]:
    """`value` of a range qualifier -> half-open [lo, hi)."""
    atom = _date if dates else _number
    if ".." in value:
        left, _, right = value.partition("..")
        lo = 0.0 if left == "*" else atom(left, what)[0]
        hi = INF if right == "*" else atom(right, what)[1]
        if left == "*" and right == "*":
            raise QueryError(f"invalid range {value!r} in {what}")
        return (-INF if dates and left == "*" else lo), hi
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            a, b = atom(value[len(op):], what)
            return {">=": (a, INF), ">": (b, INF), "<=": (-INF if dates else 0.0, b),
                    "<": (-INF if dates else 0.0, a)}[op]
    return atom(value, what)


def parse(q: str) -> Query:
    """Parse a search query; raises QueryError on a malformed known qualifier."""
    ranges: list[tuple[str, float, float]] = []
    sets: dict[str, set[str]] = {k: set() for k in ("lang", "notlang", "lic", "topic", "owner", "repo")}
    flags: dict[str, object] = {}
    words: list[str] = []
    ignored: list[str] = []
    for m in _TOKEN.finditer(q):
        neg, key, raw_value, quoted, bare = m.groups()
        if key is None:
            word = (quoted if quoted is not None else bare or "").strip().lower()
            if word and word not in ("and", "or"):
                words.append(word)
            continue
        key = key.lower()
        value = raw_value.strip('"')
        low = value.lower()
        what = f"{key}:{value}"
        if key in NUMERIC:
            lo, hi = parse_range(value, what, dates=False)
            ranges.append((NUMERIC[key] or "topics", lo, hi))
        elif key in DATES:
            lo, hi = parse_range(value, what, dates=True)
            ranges.append((DATES[key], lo, hi))
        elif key == "language":
            sets["notlang" if neg else "lang"].add(low.replace(" ", "-"))
        elif key == "license":
            sets["lic"].add(low)
        elif key == "topic":
            sets["topic"].add(low)
        elif key in ("user", "org"):
            sets["owner"].add(low)
        elif key == "repo":
            sets["repo"].add(low)
        elif key == "fork":
            if low not in ("true", "false", "only"):
                raise QueryError(f"invalid value in {what} (true, false or only)")
            flags["fork"] = low
        elif key in ("archived", "template", "mirror"):
            if low not in ("true", "false"):
                raise QueryError(f"invalid value in {what} (true or false)")
            flags[key] = low == "true"
        elif key == "is":
            if low == "private":
                flags["private"] = True
            elif low == "template":
                flags["template"] = True
            elif low == "archived":
                flags["archived"] = True
            elif low not in ("public",):
                ignored.append(what)
        else:
            ignored.append(what)
    return Query(
        ranges=tuple(ranges),
        languages=frozenset(sets["lang"]),
        not_languages=frozenset(sets["notlang"]),
        licenses=frozenset(sets["lic"]),
        topics=frozenset(sets["topic"]),
        owners=frozenset(sets["owner"]),
        repos=frozenset(sets["repo"]),
        fork=str(flags.get("fork", "false")),
        archived=flags.get("archived"),  # type: ignore[arg-type]
        template=flags.get("template"),  # type: ignore[arg-type]
        private=bool(flags.get("private", False)),
        mirror=flags.get("mirror"),  # type: ignore[arg-type]
        words=tuple(words),
        ignored=tuple(ignored),
    )
