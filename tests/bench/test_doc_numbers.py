"""The figures README.md and docs/*.md quote are the ones in bench/results/ (docs/benchmarks.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import doc_numbers, provenance

DOCS = doc_numbers.doc_files()
RESULT_FILES = sorted(doc_numbers.RESULTS.glob("*.json"))


def _name(path: Path) -> str:
    return str(path.relative_to(doc_numbers.REPO_ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_marked_figure_is_its_result(doc: Path) -> None:
    assert doc_numbers.differences(doc.read_text()) == [], "run `make docs`"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_no_unmarked_figure_beside_marked_ones(doc: Path) -> None:
    assert doc_numbers.unmarked_figures(doc.read_text()) == []


def test_readme_and_the_docs_quote_the_results() -> None:
    quoting = {_name(d) for d in DOCS if doc_numbers.VALUE.search(d.read_text())}
    assert {"README.md", "docs/development_server.md", "docs/production_server.md", "docs/deploy.md",
            "docs/data_collection.md"} <= quoting


@pytest.mark.parametrize("result", RESULT_FILES, ids=_name)
def test_every_result_says_when_on_what_code_and_machine(result: Path) -> None:
    stamp = json.loads(result.read_text())["provenance"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp["measured_at"])
    assert re.fullmatch(r"[0-9a-f]{7,40}", stamp["commit"])
    assert isinstance(stamp["dirty"], bool)
    assert stamp["cores"] >= 1 and len(stamp["load_average_start"]) == 3
    assert provenance.markdown_line(stamp) in result.with_suffix(".md").read_text()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    stamp = {"measured_at": "2026-01-01T00:00:00Z", "commit": "abcdef1234", "dirty": False, "cores": 2,
             "load_average_start": [1.0, 2.0, 3.0]}
    report = {"rows": [{"workers": 1, "rps": 10.25}, {"workers": 2, "rps": 19.5}], "ratio": 1.9024}
    tables = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| c |\n|---|\n| 3 |\n"
    provenance.write_results("speed", report, "# Speed\n\n" + tables, stamp, results=tmp_path)
    return tmp_path


def test_write_results_stamps_both_files(results: Path) -> None:
    saved = json.loads((results / "speed.json").read_text())
    assert next(iter(saved)) == "provenance" and saved["ratio"] == 1.9024
    lines = (results / "speed.md").read_text().splitlines()
    assert lines[0] == "# Speed"
    assert lines[2].startswith("Provenance: measured 2026-01-01T00:00:00Z on commit `abcdef1234`, 2 cores, ")


def test_render_rewrites_values_and_tables_and_leaves_code_alone(results: Path) -> None:
    doc = ("## Speed\n\n2 workers: <!-- bench:speed.rows[workers=2].rps|.1f -->3.0<!-- /bench -->/s, "
           "<!-- bench:speed.ratio|.2f -->9<!-- /bench -->x; best <!-- bench:speed.rows[*].rps|max:.0f -->"
           "<!-- /bench -->.\n\n<!-- bench-table:speed#2 -->\n| old |\n<!-- /bench-table -->\n\n"
           "```\n<!-- bench:speed.ratio|.2f -->example<!-- /bench -->\n```\n")
    rendered = doc_numbers.render(doc, results)
    assert "-->19.5<!--" in rendered and "-->1.90<!--" in rendered and "-->20<!--" in rendered
    assert "<!-- bench-table:speed#2 -->\n| c |\n|---|\n| 3 |\n<!-- /bench-table -->" in rendered
    assert "-->example<!--" in rendered
    assert doc_numbers.differences(rendered, results) == []
    assert doc_numbers.render(rendered, results) == rendered


def test_a_stale_figure_is_named(results: Path) -> None:
    doc = "text\n<!-- bench:speed.rows[workers=1].rps|.2f -->10.2<!-- /bench -->\n"
    assert doc_numbers.differences(doc, results) == [
        "line 2: speed.rows[workers=1].rps: doc says '10.2', result gives '10.25'"
    ]


@pytest.mark.parametrize("ref", ["missing.ratio", "speed.nope", "speed.rows[workers=3].rps", "speed.rows"])
def test_a_marker_naming_nothing_fails(results: Path, ref: str) -> None:
    with pytest.raises(doc_numbers.DocNumberError):
        doc_numbers.differences(f"<!-- bench:{ref}|.1f -->1<!-- /bench -->", results)


def test_unmarked_figures_are_found_only_in_marked_sections() -> None:
    doc = ("## Config\n\nTimeout 10.5 s, 3.11 python.\n\n## Measured\n\n"
           "<!-- bench:speed.ratio|.2f -->1.90<!-- /bench -->x, and 291/s, p99 46 ms, 89 %, 2.4x by hand; "
           "target >= 200/s, p99 < 100 ms, `0.25` in code, p50 and 10.202.0.11 and 3.11.7 are not figures.\n")
    found = doc_numbers.unmarked_figures(doc)
    assert [f.split(": ", 1)[1] for f in found] == ["'291/s'", "'46 ms'", "'89 %'", "'2.4x'"]
