"""A person's path through a real browser: headless Chromium (Debian's, driven by Playwright) opens the page
through nginx, fills five rows by hand, submits, and reads the ranked table. A screenshot of the result is
saved to ``test-artifacts/`` (git-ignored; CI keeps it) for a human to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_serving.process_stack.stack import Stack
from tests.support import TEST_ARTIFACTS, chromium_page

pytestmark = pytest.mark.integration


ROWS = [  # language, forks, open issues, created, last push
    ("Python", 12, 3, "2021-03-01", "2026-10-01"),
    ("Go", 4200, 150, "2015-06-01", "2026-11-01"),
    ("Rust", 300, 20, "2019-01-15", "2026-09-20"),
    ("JavaScript", 60, 8, "2023-05-05", "2026-08-01"),
    ("C++", 1, 0, "2025-12-24", "2026-01-02"),
]


def test_a_person_ranks_five_repositories_in_chromium(stack: Stack, signed_model: tuple[Path, str]) -> None:
    with chromium_page() as (page, console_errors):
        response = page.goto(f"{stack.url}/")
        assert response is not None and response.status == 200
        rows = page.locator("fieldset.repo-row")
        assert rows.count() == 5
        for i, (language, forks, issues, created, pushed) in enumerate(ROWS):
            rows.nth(i).locator("summary").click()  # "... or describe it by hand"
            page.fill(f"#rows-{i}-language", language)
            page.fill(f"#rows-{i}-forks_count", str(forks))
            page.fill(f"#rows-{i}-open_issues_count", str(issues))
            page.fill(f"#rows-{i}-size", "5000")
            page.fill(f"#rows-{i}-topics_count", "3")
            page.fill(f"#rows-{i}-created_at", created)
            page.fill(f"#rows-{i}-pushed_at", pushed)
            page.select_option(f"#rows-{i}-owner_type", "Organization")
            page.check(f"#rows-{i}-has_issues")
        with page.expect_navigation():
            page.click("button[type=submit]")

        assert page.locator("#model-version").inner_text() == signed_model[1]
        table = page.locator("table.ranking tbody tr")
        assert table.count() == 5
        cells = [table.nth(k).locator("td") for k in range(5)]
        ranks = [c.nth(0).inner_text() for c in cells]
        predicted = [float(c.nth(2).inner_text().replace(",", "")) for c in cells]
        assert ranks == ["1", "2", "3", "4", "5"]
        assert predicted == sorted(predicted, reverse=True)
        assert page.locator("figure.chart svg rect.bar").count() == 5  # the bar chart is drawn
        # The page works under nginx's Content-Security-Policy: nothing was blocked.
        assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
        shot = TEST_ARTIFACTS / "browser-ranking.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
