"""Rewrites the benchmark figures in README.md and docs/*.md from bench/results/*, so they cannot go stale.

The marking scheme (docs/benchmarks.md):

- one value:  ``<!-- bench:serving.stack[worker_processes=2,repos_per_request=5,connections=8].rps|.0f -->291
  <!-- /bench -->``: result file ``serving.json``, a dotted path into it, an optional format after ``|``.
  A list element is picked by ``[field=value,...]`` (exactly one must match) or ``[index]``; ``[*]`` takes
  every element, and the format may then start with ``min:``, ``max:``, ``median:`` or ``sum:``. A key
  holding dots or brackets is written in double quotes.
- one table:  ``<!-- bench-table:deploy#2 -->`` ... ``<!-- /bench-table -->``: the 2nd Markdown table of
  ``bench/results/deploy.md``, copied verbatim.

``python -m bench.doc_numbers`` rewrites every marked block (``make docs``, and ``make bench`` at its end);
``--check`` only reports blocks that differ and figures left unmarked beside marked ones, and exits 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"

VALUE = re.compile(r"<!-- bench:(?P<ref>[^|>]+?)(?:\|(?P<fmt>[^>]*?))? -->(?P<text>.*?)<!-- /bench -->", re.S)
TABLE = re.compile(
    r"<!-- bench-table:(?P<name>[\w-]+)#(?P<index>\d+) -->\n(?P<text>.*?)<!-- /bench-table -->", re.S
)
# One step of a path: .key, ."key with. dots", [field=value] or [index] or [*].
_TOKEN = re.compile(r'\.?(?:"(?P<quoted>[^"]*)"|(?P<key>[^.\["]+)|\[(?P<select>[^\]]*)\])')
_FENCE = re.compile(r"(```.*?```)", re.S)
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "min": min, "max": max, "median": statistics.median, "sum": sum,
}


class DocNumberError(ValueError):
    """A marker that names a result, path or table that does not exist, or cannot be formatted."""


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    """The documents whose figures must come from bench/results: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


@cache
def _result(name: str, results: Path) -> Any:
    path = results / f"{name}.json"
    if not path.exists():
        raise DocNumberError(f"no result file bench/results/{path.name}")
    return json.loads(path.read_text())


def _select(items: Any, selector: str, ref: str) -> Any:
    if not isinstance(items, list):
        raise DocNumberError(f"{ref}: [{selector}] applied to a non-list")
    if selector == "*":
        return items
    if selector.lstrip("-").isdigit():
        return items[int(selector)]
    wanted = dict(pair.split("=", 1) for pair in selector.split(","))
    matches = [
        item for item in items
        if isinstance(item, dict) and all(_as_text(item.get(k)) == v for k, v in wanted.items())
    ]
    if len(matches) != 1:
        raise DocNumberError(f"{ref}: [{selector}] matches {len(matches)} elements, not one")
    return matches[0]


def _as_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def lookup(ref: str, results: Path = RESULTS) -> Any:
    """The value a marker's reference ("name.path.to[field=value].key") names in bench/results/name.json."""
    name, _, path = ref.strip().partition(".")
    value = _result(name, results)
    spread = False
    position = 0
    while position < len(path):
        token = _TOKEN.match(path, position)
        if token is None:
            raise DocNumberError(f"{ref}: cannot read the path from {path[position:]!r}")
        position = token.end()
        kind, argument = ("select", token["select"]) if token["select"] is not None else (
            "key", token["quoted"] if token["quoted"] is not None else token["key"])
        value = _step(value, kind, argument, ref, spread)
        spread = spread or (kind, argument) == ("select", "*")
    return value


def _step(value: Any, kind: str, argument: str, ref: str, spread: bool) -> Any:
    if spread:
        return [_step(item, kind, argument, ref, False) for item in value]
    if kind == "select":
        return _select(value, argument, ref)
    if isinstance(value, dict) and argument in value:
        return value[argument]
    raise DocNumberError(f"{ref}: no key {argument!r}")


def render_value(ref: str, fmt: str | None, results: Path = RESULTS) -> str:
    value = lookup(ref, results)
    fmt = fmt or ""
    aggregate, _, spec = fmt.partition(":") if fmt.split(":", 1)[0] in _AGGREGATES else ("", "", fmt)
    if aggregate:
        value = _AGGREGATES[aggregate](value)
    if isinstance(value, list | dict):
        raise DocNumberError(f"{ref}: is a {type(value).__name__}; pick one value or aggregate it")
    try:
        return format(value, spec) if spec else str(value)
    except (TypeError, ValueError) as error:
        raise DocNumberError(f"{ref}: cannot format {value!r} with {spec!r}: {error}") from error


def nth_table(name: str, index: int, results: Path = RESULTS) -> str:
    """The index-th (1-based) Markdown table of bench/results/<name>.md, with its trailing newline."""
    path = results / f"{name}.md"
    if not path.exists():
        raise DocNumberError(f"no result file bench/results/{path.name}")
    tables: list[list[str]] = []
    previous_was_table = False
    for line in path.read_text().splitlines():
        is_table = line.startswith("|")
        if is_table and not previous_was_table:
            tables.append([])
        if is_table:
            tables[-1].append(line)
        previous_was_table = is_table
    if not 1 <= index <= len(tables):
        raise DocNumberError(f"{name}.md has {len(tables)} tables, not a #{index}")
    return "\n".join(tables[index - 1]) + "\n"


def render(text: str, results: Path = RESULTS) -> str:
    """The document with every marked value and table rewritten from the results (code blocks untouched)."""

    def rewrite(prose: str) -> str:
        prose = TABLE.sub(
            lambda m: f"<!-- bench-table:{m['name']}#{m['index']} -->\n"
            f"{nth_table(m['name'], int(m['index']), results)}<!-- /bench-table -->",
            prose,
        )
        return VALUE.sub(
            lambda m: text_before(m, "text") + render_value(m["ref"], m["fmt"], results) + "<!-- /bench -->",
            prose,
        )

    parts = _FENCE.split(text)
    return "".join(part if part.startswith("```") else rewrite(part) for part in parts)


def text_before(match: re.Match[str], group: str) -> str:
    """The part of a match before one of its groups (a marker's opening comment)."""
    return match.group(0)[: match.start(group) - match.start()]


def differences(text: str, results: Path = RESULTS) -> list[str]:
    """Each marked value or table whose text is not what the results give, as 'line N: ref: doc vs result'."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found = []
    for match in VALUE.finditer(text):
        expected = render_value(match["ref"], match["fmt"], results)
        if match["text"] != expected:
            line = text.count("\n", 0, match.start()) + 1
            found.append(
                f"line {line}: {match['ref']}: doc says {match['text']!r}, result gives {expected!r}"
            )
    for match in TABLE.finditer(text):
        if match["text"] != nth_table(match["name"], int(match["index"]), results):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"line {line}: table {match['name']}#{match['index']} differs from bench/results")
    return found


# A figure that looks measured: a decimal (17.6, 0.548, 1.05x) that is not part of a version or address, or
# an integer glued to a rate or latency unit (291/s, 46 ms, 89 %). Targets and limits (after <, >, <=, >=, ≤,
# ≥) and anything in `code` are not figures.
_FIGURE = re.compile(
    r"(?<![\w.<>≤≥=/])(?<![<>≤≥=] )(?<![<>]= )"
    r"(?:\d[\d,]*\.\d+(?![\d.]*\.\d)(?:\s?(?:ms\b|/s\b|%|x\b|×))?"
    r"|\d[\d,]*\s?(?:ms\b|/s\b|requests/s\b|%|x\b|×))"
)
_HEADING = re.compile(r"^#{1,6} ", re.M)
_NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)", re.S)


def unmarked_figures(text: str) -> list[str]:
    """Figures outside any marker in the sections (heading to heading) that hold a marker.

    A section that quotes bench/results must quote all of its measured figures that way; sections without a
    marker are not scanned (configuration defaults, test names, dates).
    """
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    starts = [0, *(m.start() for m in _HEADING.finditer(text)), len(text)]
    found = []
    for start, end in itertools.pairwise(starts):
        section = text[start:end]
        if not (VALUE.search(section) or TABLE.search(section)):
            continue
        prose = TABLE.sub("", VALUE.sub("", section))
        prose = _NOT_PROSE.sub("", prose)
        heading = section.splitlines()[0] if section.strip() else ""
        found += [f"{heading.strip()!r}: {m.group(0)!r}" for m in _FIGURE.finditer(prose)
                  if not _is_heading_line(prose, m.start())]
    return found


def _is_heading_line(text: str, position: int) -> bool:
    return text[text.rfind("\n", 0, position) + 1:].startswith("#")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args(argv)
    problems = []
    for path in doc_files():
        text = path.read_text()
        name = path.relative_to(REPO_ROOT)
        try:
            if args.check:
                problems += [f"{name}: {d}" for d in differences(text)]
            elif (rendered := render(text)) != text:
                path.write_text(rendered)
                print(f"rewrote {name}")
        except DocNumberError as error:
            problems.append(f"{name}: {error}")
        problems += [f"{name}: unmarked figure {f}" for f in unmarked_figures(path.read_text())]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
