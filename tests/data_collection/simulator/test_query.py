"""Search query parsing: GitHub's range forms become half-open intervals; bad ranges are named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from data_collection.simulator.query import INF, QueryError, parse


def _day(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("q", "lo", "hi"), [
    ("stars:>=50", 50, INF),
    ("stars:>50", 51, INF),
    ("stars:<=50", 0, 51),
    ("stars:<50", 0, 50),
    ("stars:50", 50, 51),
    ("stars:50..80", 50, 81),
    ("stars:50..*", 50, INF),
    ("stars:*..80", 0, 81),
])
def test_star_ranges(q: str, lo: float, hi: float) -> None:
    assert parse(q).star_bounds() == (lo, hi)


def test_several_star_qualifiers_intersect() -> None:
    assert parse("stars:>=50 stars:<=80").star_bounds() == (50, 81)


@pytest.mark.parametrize(("q", "lo", "hi"), [
    ("created:2020-01-01..2020-01-31", _day("2020-01-01"), _day("2020-02-01")),
    ("created:>=2020-01-01", _day("2020-01-01"), INF),
    ("created:>2020-01-01", _day("2020-01-02"), INF),
    ("created:<=2020-01-31", -INF, _day("2020-02-01")),
    ("created:<2020-01-31", -INF, _day("2020-01-31")),
    ("created:2020-01-05", _day("2020-01-05"), _day("2020-01-06")),
    ("created:2020-01-05T10:00:00Z..2020-01-05T11:59:59Z", _day("2020-01-05T10:00:00"),
     _day("2020-01-05T12:00:00")),
    ("created:2020-01-05T10:00:00+00:00..*", _day("2020-01-05T10:00:00"), INF),
])
def test_date_ranges_cover_whole_days(q: str, lo: float, hi: float) -> None:
    (name, a, b), = parse(q).ranges
    assert (name, a, b) == ("created_at", lo, hi)


def test_other_qualifiers_and_words() -> None:
    query = parse('stars:>=10 language:python language:"Jupyter Notebook" -language:go fork:true '
                  'archived:false is:public in:name good-first-issues:>2 license:mit topic:cli awesome')
    assert query.languages == {"python", "jupyter-notebook"}
    assert query.not_languages == {"go"}
    assert query.fork == "true" and query.archived is False and not query.private
    assert query.licenses == {"mit"} and query.topics == {"cli"}
    assert query.words == ("awesome",)
    assert "in:name" in query.ignored and "good-first-issues:>2" in query.ignored
    assert parse("stars:>1").fork == "false"  # forks are excluded unless asked for, as on GitHub


@pytest.mark.parametrize("q", ["stars:>abc", "stars:1..x", "created:2020-13-01", "created:yesterday",
                               "fork:maybe", "archived:perhaps", "stars:*..*"])
def test_malformed_known_qualifiers_are_refused(q: str) -> None:
    with pytest.raises(QueryError):
        parse(q)
