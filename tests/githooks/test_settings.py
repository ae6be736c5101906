"""Hook settings: the host's git config decides, the environment is a fallback; bad values are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from githooks.settings import HookSettings, SettingsError
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS, REPO_ROOT


def test_git_config_wins_over_the_pushers_environment(tmp_path: Path) -> None:
    host_key = DEPLOY_KEYS.write_public(tmp_path / "host_public_key")
    env = {
        "STARGAZER_APP_DIR": "/pusher/app",
        "STARGAZER_MODEL_DIR": "/pusher/models",
        "STARGAZER_DEPLOY_PUBLIC_KEY": OTHER_DEPLOY_KEYS.public_text,
    }
    config = {
        "stargazer.appdir": "/opt/stargazer",
        "stargazer.modeldir": "/var/lib/stargazer/models",
        "stargazer.publickeyfile": str(host_key),
        "stargazer.keep": "3",
        "stargazer.checktimeout": "7.5",
        "stargazer.checkuser": "",
        "stargazer.checkmemory": "1024",
        "stargazer.checksandbox": "/usr/local/libexec/stargazer/check-sandbox",
        "stargazer.hostname": "prod1",
    }
    settings = HookSettings.from_env(env, config)
    assert settings.app_dir == Path("/opt/stargazer")
    assert settings.model_dir == Path("/var/lib/stargazer/models")
    assert settings.public_key == DEPLOY_KEYS.public
    assert (settings.keep, settings.check_timeout, settings.check_user, settings.host_name) == (
        3,
        7.5,
        None,
        "prod1",
    )
    assert settings.check_memory_mb == 1024
    assert settings.check_sandbox == Path("/usr/local/libexec/stargazer/check-sandbox")


def test_environment_is_the_fallback() -> None:
    env = {"STARGAZER_APP_DIR": "/a", "STARGAZER_MODEL_DIR": "/m",
           "STARGAZER_DEPLOY_PUBLIC_KEY": DEPLOY_KEYS.public_text}
    settings = HookSettings.from_env(env, {})
    assert (settings.app_dir, settings.model_dir) == (Path("/a"), Path("/m"))
    assert settings.public_key == DEPLOY_KEYS.public
    assert settings.keep == 5 and settings.check_user == "stargazer-check"
    assert settings.check_memory_mb == 3072 and settings.check_sandbox is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "git config stargazer.appdir / STARGAZER_APP_DIR is not set"),
        ({"stargazer.appdir": "/a"}, "git config stargazer.modeldir / STARGAZER_MODEL_DIR is not set"),
        (
            {"stargazer.appdir": "/a", "stargazer.modeldir": "/m", "stargazer.keep": "many"},
            "git config stargazer.keep: Input should be a valid integer",
        ),
        ({"stargazer.appdir": "/a", "stargazer.modeldir": "/m", "stargazer.keep": "0"},
         "git config stargazer.keep: Input should be greater than or equal to 1"),
        (
            {"stargazer.appdir": "/a", "stargazer.modeldir": "/m", "stargazer.publickeyfile": "/nonexistent"},
            "cannot read the deploy public key file",
        ),
        (
            {"stargazer.appdir": "/a", "stargazer.modeldir": "/m",
             "stargazer.publickeyfile": str(REPO_ROOT / "README.md")},
            "the deploy public key is not the base64 of 32 bytes",
        ),
    ],
)
def test_bad_settings_are_one_line(config: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        HookSettings.from_env({}, config)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_push_options_are_read_with_the_settings() -> None:
    config = {"stargazer.appdir": "/a", "stargazer.modeldir": "/m"}
    env = {"GIT_PUSH_OPTION_COUNT": "2", "GIT_PUSH_OPTION_0": "actor=alice@dev", "GIT_PUSH_OPTION_1": "flag"}
    assert HookSettings.from_env(env, config).push_options == {"actor": "alice@dev", "flag": ""}
    assert HookSettings.from_env({"GIT_PUSH_OPTION_COUNT": "x"}, config).push_options == {}


def test_git_config_keys_the_hooks_do_not_read_are_left_alone() -> None:
    config = {"stargazer.appdir": "/a", "stargazer.modeldir": "/m", "stargazer.python": "/usr/bin/python3"}
    assert HookSettings.from_env({}, config).app_dir == Path("/a")


def test_an_empty_git_config_value_is_unset_except_the_check_user() -> None:
    env = {"STARGAZER_APP_DIR": "/from-env", "STARGAZER_MODEL_DIR": "/m"}
    config = {"stargazer.appdir": "", "stargazer.keep": "", "stargazer.checkuser": ""}
    settings = HookSettings.from_env(env, config)
    assert (settings.app_dir, settings.keep, settings.check_user) == (Path("/from-env"), 5, None)
