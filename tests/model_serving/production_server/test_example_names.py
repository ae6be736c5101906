"""The form's example names: GitHub's own by default, the operator's list (the demo: the simulator's
repositories) when STARGAZER_EXAMPLE_REPOSITORIES is set, none when it is set empty, a bad entry refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_serving.production_server import create_app
from model_serving.production_server.settings import (
    DEFAULT_EXAMPLE_REPOSITORIES,
    ServingSettings,
    SettingsError,
)


def _settings(tmp_path: Path, **env: str) -> ServingSettings:
    return ServingSettings.from_env({"STARGAZER_STATE_DIR": str(tmp_path), **env})


def test_unset_means_names_that_exist_on_github(tmp_path: Path) -> None:
    assert _settings(tmp_path).example_repositories == DEFAULT_EXAMPLE_REPOSITORIES


def test_the_operator_list_is_read_in_order_and_an_empty_one_shows_none(tmp_path: Path) -> None:
    names = " suco/infra-template, lira766/cli-edge ,kecode675/visionjob,"
    assert _settings(tmp_path, STARGAZER_EXAMPLE_REPOSITORIES=names).example_repositories == (
        "suco/infra-template", "lira766/cli-edge", "kecode675/visionjob")
    assert _settings(tmp_path, STARGAZER_EXAMPLE_REPOSITORIES="").example_repositories == ()


def test_a_name_that_is_not_owner_slash_name_is_refused_in_one_line(tmp_path: Path) -> None:
    message = r"^STARGAZER_EXAMPLE_REPOSITORIES: must list owner/name, got 'flask'$"
    with pytest.raises(SettingsError, match=message):
        _settings(tmp_path, STARGAZER_EXAMPLE_REPOSITORIES="pallets/flask,flask")


@pytest.mark.parametrize(("env", "shown"), [
    ({"STARGAZER_EXAMPLE_REPOSITORIES": "suco/infra-template,lira766/cli-edge"},
     ["suco/infra-template", "lira766/cli-edge"]),
    ({"STARGAZER_EXAMPLE_REPOSITORIES": ""}, []),
])
def test_the_form_page_shows_the_examples(tmp_path: Path, env: dict[str, str], shown: list[str]) -> None:
    app = create_app({"STARGAZER": _settings(tmp_path, **env), "TESTING": True})
    page = app.test_client().get("/").get_data(as_text=True)
    if shown:
        assert "Names to try:" in page
        assert all(f"<code>{name}</code>" in page for name in shown)
    else:
        assert 'id="examples"' not in page
