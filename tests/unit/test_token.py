"""The token: stripped wherever it comes from, refused in one line when it cannot be a
token, re-read from its file when the file changes, cheaply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clonequeue.config import load_settings
from clonequeue.config.token import TokenSource, clean_token
from clonequeue.errors import ConfigError
from clonequeue.redaction import REDACTOR

TOKEN = "sk_live_8f2a9c0d1e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CLONEQUEUE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("raw", [f"{TOKEN}\n", f"  {TOKEN}\r\n", f"\t{TOKEN} "])
def test_surrounding_whitespace_is_stripped_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("CLONEQUEUE_API_TOKEN", raw)
    settings = load_settings()
    assert settings.require_token().get_secret_value() == TOKEN
    assert settings.token_source().header() == f"Bearer {TOKEN}"


def test_surrounding_whitespace_is_stripped_from_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(f"{TOKEN}\n\n")
    monkeypatch.setenv("CLONEQUEUE_API_TOKEN_FILE", str(tmp_path / "token"))
    assert load_settings().require_token().get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        ("sk_live 8f2a", "a space at character 8 of 12"),
        ("sk_live\n8f2a", "a space at character 8 of 12"),
        ("sk_live\x008f2a", "a control or non-ASCII character at character 8"),
        ("sk_livé8f2a", "a control or non-ASCII character at character 7"),
    ],
)
def test_inner_whitespace_or_control_characters_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, raw: str, what: str
) -> None:
    if "\x00" in raw:  # the environment cannot hold NUL: the file path can
        token_file = Path("token")
        token_file.write_text(raw)
        monkeypatch.setenv("CLONEQUEUE_API_TOKEN_FILE", str(token_file))
        variable = "CLONEQUEUE_API_TOKEN_FILE (token)"
    else:
        monkeypatch.setenv("CLONEQUEUE_API_TOKEN", raw)
        variable = "CLONEQUEUE_API_TOKEN"
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{variable} holds {what}")
    assert "copy it again without spaces or line breaks" in message
    assert "8f2a" not in message  # never the token


def test_an_empty_token_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="CLONEQUEUE_API_TOKEN is empty: put the API token in it"):
        clean_token(" \n", source="CLONEQUEUE_API_TOKEN")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_token_file_is_read_again_after_the_check_interval(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok_first_111\n")
    clock = FakeClock()
    source = TokenSource("tok_first_111", path, check_every_s=5.0, clock=clock)
    path.write_text("tok_second_222\n")
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the filesystem's resolution
    clock.now = 4.9
    assert source.header() == "Bearer tok_first_111"  # cached: no stat yet
    clock.now = 5.0
    assert source.header() == "Bearer tok_second_222"
    assert REDACTOR.redact("x tok_second_222") == "x [REDACTED]"  # registered before use


def test_the_file_is_stated_once_per_interval_not_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("tok_first_111")
    clock = FakeClock()
    source = TokenSource("tok_first_111", path, check_every_s=5.0, clock=clock)
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    for step in range(1001):
        clock.now = step * 0.01  # 1,001 requests in 10 s: a stat at 5 s and at 10 s
        source.header()
    assert len(stats) == 2


def test_reload_after_a_401_reports_whether_the_token_changed(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok_first_111")
    source = TokenSource("tok_first_111", path, clock=FakeClock())
    assert source.reload() is False  # same token: the fleet pauses
    path.write_text("tok_second_222")
    assert source.reload() is True
    assert source.header() == "Bearer tok_second_222"
    assert TokenSource("tok_env_333").reload() is False  # from the environment: nothing to re-read


def test_a_broken_rotation_keeps_the_previous_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok_first_111")
    source = TokenSource("tok_first_111", path, clock=FakeClock())
    path.write_text("half written\x00")
    assert source.reload() is False
    path.unlink()
    assert source.reload() is False
    assert source.header() == "Bearer tok_first_111"
