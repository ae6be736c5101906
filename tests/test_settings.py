"""The settings modules together: one entry point each, errors as one line naming the variable (never a
secret's value), environment reads in settings modules only, and README's table generated from the classes."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from pydantic import Field

from envsettings import EnvSettings, SettingsError, child_environment, hand_down
from envsettings.private_files import create_once, read_secret, write_private
from scripts import settings_table
from tests.support import REPO_ROOT

#: Where the environment may be read: the settings modules and the one helper that hands it to children.
SETTINGS_MODULES = {
    "envsettings/base.py",
    "envsettings/child_env.py",
    "data_collection/settings.py",
    "githooks/settings.py",
    "model_serving/development_server/settings.py",
    "model_serving/production_server/settings.py",
    "provisioning/settings.py",
    "rehearsal/settings.py",
    "scripts/demo_settings.py",
}
#: Packages whose code must leave the environment to those modules.
CHECKED = (
    "envsettings", "data_collection", "githooks", "model_serving", "provisioning", "rehearsal", "bench",
    "scripts", "start_instances.py",
)


class _Example(EnvSettings):
    pin: int = Field(0, repr=False, validation_alias="EXAMPLE_PIN", description="a secret number")
    count: int = Field(1, ge=1, validation_alias="EXAMPLE_COUNT", description="a plain number")
    code_only: int = 3


def test_a_bad_value_is_one_line_naming_the_variable_and_a_secret_value_is_never_shown() -> None:
    with pytest.raises(SettingsError) as plain:
        _Example.from_env({"EXAMPLE_COUNT": "0"})
    assert str(plain.value) == "EXAMPLE_COUNT: Input should be greater than or equal to 1, got '0'"
    with pytest.raises(SettingsError) as secret:
        _Example.from_env({"EXAMPLE_PIN": "hunter2-not-a-number"})
    assert str(secret.value).startswith("EXAMPLE_PIN: ") and "hunter2" not in str(secret.value)
    assert "\n" not in str(secret.value)


def test_only_from_env_reads_the_environment_and_only_named_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_COUNT", "5")
    monkeypatch.setenv("code_only", "9")
    assert _Example().count == 1  # built by hand: exactly what the code says
    from_env = _Example.from_env()
    assert (from_env.count, from_env.code_only) == (5, 3)
    assert _Example.from_env({"EXAMPLE_COUNT": ""}).count == 1  # empty is unset


def test_every_settings_field_an_operator_sets_is_described() -> None:
    for _, cls in settings_table.settings_classes():
        for name, info in cls.model_fields.items():
            if info.validation_alias is not None:
                assert info.description, f"{cls.__module__}.{cls.__name__}.{name} has no description"


def test_readme_configuration_table_is_the_one_the_settings_classes_generate() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table.current(readme) == settings_table.render(), (
        "README.md's settings table is stale: run python -m scripts.settings_table")


def _environment_reads(path: Path) -> list[str]:
    """``os.environ`` / ``os.getenv`` uses and click ``envvar=`` options in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} os.{node.attr}")
        if isinstance(node, ast.keyword) and node.arg in {"envvar", "auto_envvar_prefix"}:
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.value.lineno} click {node.arg}=")
    return found


def _python_files(place: Path) -> list[Path]:
    return [place] if place.is_file() else sorted(place.rglob("*.py"))


def test_the_environment_is_read_only_in_settings_modules() -> None:
    reads = [
        read
        for package in CHECKED
        for path in _python_files(REPO_ROOT / package)
        if str(path.relative_to(REPO_ROOT)) not in SETTINGS_MODULES
        for read in _environment_reads(path)
    ]
    assert reads == [], "environment read outside a settings module:\n" + "\n".join(reads)


def test_a_child_environment_drops_what_it_is_told_and_adds_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("STARGAZER_DEPLOY_SIGNING_KEY", "k")
    env = child_environment({"EXTRA": "1"}, drop=("STARGAZER_DEPLOY_SIGNING_KEY",), drop_prefixes=("RAY_",))
    assert env["EXTRA"] == "1" and env["PATH"] == os.environ["PATH"]
    assert "RAY_ADDRESS" not in env and "STARGAZER_DEPLOY_SIGNING_KEY" not in env


def test_hand_down_sets_and_removes_what_children_started_in_process_inherit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # monkeypatch records both variables first, so the session's environment is restored afterwards.
    monkeypatch.setenv("RAY_AUTH_TOKEN", "inline")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/old/token")
    hand_down({"RAY_AUTH_TOKEN_PATH": "/run/token", "RAY_AUTH_TOKEN": None})
    env = child_environment()
    assert env["RAY_AUTH_TOKEN_PATH"] == "/run/token" and "RAY_AUTH_TOKEN" not in env


def test_private_files_are_0600_from_the_start_and_made_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    write_private(token, "t0k3n")
    assert (token.stat().st_mode & 0o777, token.read_text()) == (0o600, "t0k3n")
    with pytest.raises(FileExistsError):
        write_private(token, "other")  # never overwrites: a second writer must notice
    key = tmp_path / "state" / "key"
    first = create_once(key)
    assert create_once(key) == first and key.stat().st_mode & 0o777 == 0o600
    key.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        create_once(key)


def test_a_secret_file_error_names_the_variable_and_the_path_never_the_contents(tmp_path: Path) -> None:
    assert read_secret("inline", tmp_path / "absent", name="X_SECRET") == "inline"
    (tmp_path / "secret").write_text(" s3cret \n")
    assert read_secret(None, tmp_path / "secret", name="X_SECRET") == "s3cret"
    with pytest.raises(ValueError, match=r"^X_SECRET_FILE '.*absent' cannot be read"):
        read_secret(None, tmp_path / "absent", name="X_SECRET")
