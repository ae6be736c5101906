"""`ansible-playbook --check --diff` previews a first run of site.yml on fresh hosts, without failing.

The rehearsal's ``preview`` stage runs it over SSH on the six fresh namespace hosts, one per tier and two of
production and of Ray workers (no checkout, no venv, no service account, nothing under supervisor) before
the first converge, as the run book has the operator do: every role must get through, the preview must say
what it would change, and the hosts must be left exactly as they were.
"""

from __future__ import annotations

import pytest

from tests.rehearsed_fleet import RUN_TIMEOUT, RehearsedFleet

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(RUN_TIMEOUT + 900)]


def test_check_diff_previews_a_first_run_of_every_tier_on_fresh_hosts(
    rehearsed_fleet: RehearsedFleet,
) -> None:
    assert "preview" in rehearsed_fleet.timings, rehearsed_fleet.output[-5000:]
    preview = rehearsed_fleet.results["preview"]
    would = preview["would_change"]
    assert len(would) == 6, would
    # A first run has much to do on every host, and the preview says so.
    assert all(count >= 10 for count in would.values()), would
    # The diff shows what would be written: the nginx config with its HTTPS server, the env file.
    assert set(preview["diff_shows"]) == {"ssl_certificate", "STARGAZER_APP_DIR="}, preview
    # Nothing was made: no checkout, no config, no home, no supervisord, no service account.
    assert preview["made"] == [] and preview["accounts"] == [], preview


def test_the_preview_shows_no_secret(rehearsed_fleet: RehearsedFleet) -> None:
    log = rehearsed_fleet.logs["preview"]
    assert "PLAY RECAP" in log
    for name, value in rehearsed_fleet.secrets.items():
        if value:
            assert value not in log, f"{name} leaked into the --check --diff output"
