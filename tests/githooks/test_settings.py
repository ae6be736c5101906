"""Hook settings: the host's git config decides, the environment is a fallback; bad values are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from githooks.settings import HookSettings, SettingsError


def test_git_config_wins_over_the_pushers_environment(tmp_path: Path) -> None:
    host_secret = tmp_path / "host_secret"
    host_secret.write_text("host-secret\n")
    env = {
        "STARGAZER_APP_DIR": "/pusher/app",
        "STARGAZER_MODEL_DIR": "/pusher/models",
        "STARGAZER_DEPLOY_SECRET": "pusher-secret",
    }
    config = {
        "stargazer.appdir": "/opt/stargazer",
        "stargazer.modeldir": "/var/lib/stargazer/models",
        "stargazer.secretfile": str(host_secret),
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
    assert settings.secret == b"host-secret"
    assert (settings.keep, settings.check_timeout, settings.check_user, settings.host_name) == (
        3,
        7.5,
        None,
        "prod1",
    )
    assert settings.check_memory_mb == 1024
    assert settings.check_sandbox == Path("/usr/local/libexec/stargazer/check-sandbox")
    assert "host-secret" not in repr(settings)


def test_environment_is_the_fallback() -> None:
    env = {"STARGAZER_APP_DIR": "/a", "STARGAZER_MODEL_DIR": "/m", "STARGAZER_DEPLOY_SECRET": "s"}
    settings = HookSettings.from_env(env, {})
    assert (settings.app_dir, settings.model_dir, settings.secret) == (Path("/a"), Path("/m"), b"s")
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
            {"stargazer.appdir": "/a", "stargazer.modeldir": "/m", "stargazer.secretfile": "/nonexistent/s"},
            "cannot read deploy secret file",
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


def test_an_empty_git_config_value_is_unset_except_the_check_user() -> None:
    env = {"STARGAZER_APP_DIR": "/from-env", "STARGAZER_MODEL_DIR": "/m"}
    config = {"stargazer.appdir": "", "stargazer.keep": "", "stargazer.checkuser": ""}
    settings = HookSettings.from_env(env, config)
    assert (settings.app_dir, settings.keep, settings.check_user) == (Path("/from-env"), 5, None)
