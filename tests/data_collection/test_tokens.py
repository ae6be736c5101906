"""Token pool: choice by quota, waits, drops; secrets never formatted."""

from __future__ import annotations

import logging
import pickle

import pytest

from data_collection.settings import Settings, SettingsError
from data_collection.tokens import NoUsableTokenError, TokenPool

SECRET_A, SECRET_B = "ghp_secretAAAA", "ghp_secretBBBB"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_token_never_formats_as_its_value():
    pool = TokenPool([SECRET_A])
    token = pool.tokens[0]
    for text in (repr(token), str(token), f"{token}", f"{token!r}", repr(pool.tokens), token.label):
        assert SECRET_A not in text
    assert "token#1" in repr(token)
    assert SECRET_A not in str(pickle.loads(pickle.dumps(token)).authorization())
    assert token.authorization() == f"Bearer {SECRET_A}"


def test_settings_repr_hides_tokens():
    s = Settings.from_env({"GITHUB_TOKENS": f"{SECRET_A},{SECRET_B}"})
    assert s.tokens == (SECRET_A, SECRET_B)
    assert SECRET_A not in repr(s)


def test_tokens_file_and_variable_are_merged(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# comment\n{SECRET_B}\n{SECRET_A}\n")
    merged = Settings.from_env({"GITHUB_TOKENS": SECRET_A, "GITHUB_TOKENS_FILE": str(f)}).tokens
    assert merged == (SECRET_A, SECRET_B)
    with pytest.raises(SettingsError, match=r"GITHUB_TOKENS_FILE .* cannot be read"):
        Settings.from_env({"GITHUB_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="GITHUB_API_URL"):
        Settings.from_env({"GITHUB_API_URL": "ftp://x"})


def test_most_remaining_wins_and_reservations_spread_the_load():
    clock = Clock()
    pool = TokenPool([SECRET_A, SECRET_B], clock=clock)
    a, b = pool.tokens
    pool.update(a, "core", {"x-ratelimit-remaining": "10", "x-ratelimit-reset": "1000100"})
    pool.update(b, "core", {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1000100"})
    chosen = [pool.acquire("core")[0].position for _ in range(6)]
    assert chosen[:2] == [2, 2]  # 12, 11 > 10
    assert chosen[2:] == [1, 2, 1, 2]  # level at 10: then they alternate as each is reserved


def test_exhausted_token_rotates_then_waits_until_earliest_reset():
    clock = Clock()
    pool = TokenPool([SECRET_A, SECRET_B], clock=clock)
    a, b = pool.tokens
    pool.update(a, "search", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 50)})
    assert pool.acquire("search")[0] is b  # rotation
    pool.exhausted(b, "search", clock.now + 20)
    token, wait = pool.acquire("search")
    assert token is None and wait == pytest.approx(20)
    assert pool.acquire("core")[0] is not None  # other resources are metered separately
    clock.now += 21
    assert pool.acquire("search")[0] is b  # after the reset: usable again


def test_secondary_block_pauses_only_that_token():
    clock = Clock()
    pool = TokenPool([SECRET_A, SECRET_B], clock=clock)
    a, b = pool.tokens
    pool.block(a, 30)
    assert {pool.acquire("core")[0].position for _ in range(3)} == {2}
    pool.block(b, 10)
    assert pool.acquire("core") == (None, pytest.approx(10))


def test_dropped_token_is_named_by_position_only(caplog):
    pool = TokenPool([SECRET_A, SECRET_B])
    with caplog.at_level(logging.WARNING):
        pool.drop(pool.tokens[0])
    assert "token#1" in caplog.text and SECRET_A not in caplog.text
    assert [t.position for t in pool.tokens] == [2]
    pool.drop(pool.tokens[0])
    with pytest.raises(NoUsableTokenError):
        pool.acquire("core")


def test_no_token_means_anonymous_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        pool = TokenPool([])
    assert "unauthenticated" in caplog.text
    token, _ = pool.acquire("core")
    assert token.anonymous and token.authorization() is None


def test_progress_bar_shows_quota_per_token_position_only(capsys):
    from data_collection.progress import Progress

    pool = TokenPool([SECRET_A, SECRET_B])
    a, _ = pool.tokens
    pool.update(a, "core", {"x-ratelimit-remaining": "4321", "x-ratelimit-reset": "9999999999"})
    progress = Progress(pool, enabled=True)
    progress.phase("enrich", 10)
    progress.update(3)
    progress.status("all tokens spent for core: sleeping 3.0s until the reset")
    progress.close()
    err = capsys.readouterr().err
    assert "token#1=4321" in err and "token#2=?" in err and "3/10" in err
    assert "sleeping" in err
    assert SECRET_A not in err and SECRET_B not in err
