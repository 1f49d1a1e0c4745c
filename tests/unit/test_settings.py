"""Settings: parsing, one clear line per bad value, and the token never shown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clonequeue.api.client import ApiClient
from clonequeue.config import load_settings
from clonequeue.errors import ConfigError, InputError, RejectedError
from clonequeue.logs import RedactingFilter

TOKEN = "tok-SECRET-1234567890"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CLONEQUEUE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.api_base_url == "https://www.jimmyai.cn"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.effective_broker_url == settings.redis_url
    assert (settings.poll_interval_min_s, settings.poll_interval_max_s) == (5.0, 10.0)


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLONEQUEUE_MAX_IN_FLIGHT=42\nOTHER_TOOL=1\n")
    monkeypatch.setenv("CLONEQUEUE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    settings = load_settings()
    assert settings.max_in_flight == 42
    assert settings.effective_broker_url.startswith("amqp://")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CLONEQUEUE_POLL_INTERVAL_MIN_S", "abc", "CLONEQUEUE_POLL_INTERVAL_MIN_S='abc': "),
        ("CLONEQUEUE_HTTP_READ_TIMEOUT_S", "-1", "CLONEQUEUE_HTTP_READ_TIMEOUT_S='-1': "),
        ("CLONEQUEUE_API_BASE_URL", "not a url", "CLONEQUEUE_API_BASE_URL='not a url': must be"),
        (
            "CLONEQUEUE_REDIS_URL",
            "http://x",
            "CLONEQUEUE_REDIS_URL='http://x': must be a Redis URL",
        ),
        (
            "CLONEQUEUE_BROKER_URL",
            "pigeon://x",
            "CLONEQUEUE_BROKER_URL='pigeon://x': must be a kombu",
        ),
        ("CLONEQUEUE_API_RATE_LIMIT", "fast", "CLONEQUEUE_API_RATE_LIMIT='fast': must read like"),
        ("CLONEQUEUE_LOG_FORMAT", "xml", "CLONEQUEUE_LOG_FORMAT='xml': "),
        (
            "CLONEQUEUE_ARTIFACTS_URL",
            "relative/dir",
            "CLONEQUEUE_ARTIFACTS_URL='relative/dir': a folder must be given by its absolute",
        ),
        ("CLONEQUEUE_ARTIFACTS_URL", "gopher://x/", "CLONEQUEUE_ARTIFACTS_URL='gopher://x/': "),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    message = config_error(monkeypatch, **{name: value})
    assert message.startswith(expected)
    assert "\n" not in message


def test_unknown_variable_is_caught_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, CLONEQUEUE_POLL_INTERVAL="abc")
    assert message.startswith("CLONEQUEUE_POLL_INTERVAL is not a clonequeue setting")
    assert "did you mean CLONEQUEUE_POLL_INTERVAL_M" in message


def test_an_unknown_name_set_only_in_the_env_file_names_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user looked for CLONEQUEUE_TYPO in their shell; it was in ./.env (QA pass)."""
    for key in [k for k in os.environ if k.startswith("CLONEQUEUE_")]:
        monkeypatch.delenv(key)
    env = tmp_path / ".env"
    env.write_text("CLONEQUEUE_TYPO=1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=env)
    assert str(info.value).startswith(f"CLONEQUEUE_TYPO (set in {env}) is not a clonequeue")
    monkeypatch.setenv("CLONEQUEUE_TYPO", "1")  # in the shell too: the shell's is read
    with pytest.raises(ConfigError) as shell:
        load_settings(env_file=env)
    assert str(shell.value).startswith("CLONEQUEUE_TYPO is not a clonequeue setting")


def test_inconsistent_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, CLONEQUEUE_POLL_INTERVAL_MIN_S="20")
    assert "CLONEQUEUE_POLL_INTERVAL_MIN_S must not exceed" in message


def test_token_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("CLONEQUEUE_API_TOKEN_FILE", str(secret))
    assert load_settings().require_token().get_secret_value() == TOKEN


def test_missing_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = config_error(monkeypatch, CLONEQUEUE_API_TOKEN_FILE=str(tmp_path / "nope"))
    assert "CLONEQUEUE_API_TOKEN_FILE: cannot read" in message


def test_token_and_file_together(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "t").write_text("x")
    message = config_error(
        monkeypatch, CLONEQUEUE_API_TOKEN="a", CLONEQUEUE_API_TOKEN_FILE=str(tmp_path / "t")
    )
    assert "not both" in message


def test_no_token_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError, match="CLONEQUEUE_API_TOKEN is not set"):
        load_settings().require_token()


def test_token_never_in_repr_dump_or_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLONEQUEUE_API_TOKEN", TOKEN)
    settings = load_settings()
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    assert TOKEN not in repr(ApiClient.from_settings(settings))
    assert TOKEN not in str(RejectedError("nope", endpoint="POST /x", http_status=400))


def test_redacting_filter_masks_messages_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "header %s", (TOKEN,), None)
    try:
        raise ValueError(f"Bearer {TOKEN}")
    except ValueError:
        record.exc_info = sys.exc_info()
    RedactingFilter([TOKEN]).filter(record)
    assert TOKEN not in record.getMessage()
    assert "[REDACTED]" in record.getMessage()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("CLONEQUEUE_")}
    return subprocess.run(
        [sys.executable, "-m", "clonequeue", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_config_show_redacts_the_token() -> None:
    done = run_cli("config", "show", env={"CLONEQUEUE_API_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert "CLONEQUEUE_API_TOKEN=********** (set)" in done.stdout


def test_cli_bad_value_is_one_line_not_a_traceback() -> None:
    done = run_cli("config", "show", env={"CLONEQUEUE_HTTP_READ_TIMEOUT_S": "-5"})
    assert done.returncode == 2
    assert done.stderr.startswith("error: CLONEQUEUE_HTTP_READ_TIMEOUT_S='-5': ")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("CLONEQUEUE_FOO", None),  # only the prefix in common: no suggestion
        ("CLONEQUEUE_WORKERS", None),
        ("CLONEQUEUE_LOG_FORMT", "CLONEQUEUE_LOG_FORMAT"),
        ("CLONEQUEUE_REDIS_ULR", "CLONEQUEUE_REDIS_URL"),
        ("CLONEQUEUE_MAX_INFLIGHT", "CLONEQUEUE_MAX_IN_FLIGHT"),
    ],
)
def test_unknown_variable_suggests_only_a_close_match(
    monkeypatch: pytest.MonkeyPatch, name: str, suggestion: str | None
) -> None:
    message = config_error(monkeypatch, **{name: "1"})
    hint = f" (did you mean {suggestion}?)" if suggestion else ""
    assert message == f"{name} is not a clonequeue setting{hint}; see `clonequeue config show`"


SENTINEL_URL = "sentinel://:s3cret-pw@h1:26379/1;sentinel://h2:26380;sentinel://h3"


def test_sentinel_urls_are_parsed_as_kombu_reads_them() -> None:
    from clonequeue.config.redis_urls import parse_sentinel_url

    settings = load_settings(redis_url=SENTINEL_URL)
    assert settings.effective_broker_url == SENTINEL_URL
    assert settings.sentinel_master == "mymaster"
    parsed = parse_sentinel_url(SENTINEL_URL)
    assert parsed.sentinels == (("h1", 26379), ("h2", 26380), ("h3", 26379))
    assert (parsed.password, parsed.db) == ("s3cret-pw", 1)


def test_config_show_masks_passwords_in_redis_urls() -> None:
    done = run_cli(
        "config",
        "show",
        "--json",
        env={
            "CLONEQUEUE_REDIS_URL": SENTINEL_URL,
            "CLONEQUEUE_BROKER_URL": "redis://:other-pw@h9:6379/0",
            "CLONEQUEUE_SENTINEL_PASSWORD": "sentinel-pw",
            "CLONEQUEUE_SENTINEL_MASTER": "cq",
        },
    )
    assert done.returncode == 0, done.stderr
    for secret in ("s3cret-pw", "other-pw", "sentinel-pw"):
        assert secret not in done.stdout + done.stderr
    shown = __import__("json").loads(done.stdout)
    assert shown["CLONEQUEUE_REDIS_URL"].startswith("sentinel://:***@h1:26379/1;sentinel://h2")
    assert shown["CLONEQUEUE_BROKER_URL"] == "redis://:***@h9:6379/0"
    assert shown["CLONEQUEUE_SENTINEL_MASTER"] == "cq"
    assert shown["CLONEQUEUE_REDIS_MIN_REPLICAS"] == "0"


def test_config_show_masks_the_values_in_a_urls_query() -> None:
    """A webhook URL can carry its token in the query (`?token=…`): shown, it leaked."""
    url = "https://hooks.example.com/x?token=abc123&team=ops"
    done = run_cli("config", "show", "--json", env={"CLONEQUEUE_WEBHOOK_URL": url})
    assert done.returncode == 0, done.stderr
    assert "abc123" not in done.stdout + done.stderr
    shown = __import__("json").loads(done.stdout)
    assert shown["CLONEQUEUE_WEBHOOK_URL"] == "https://hooks.example.com/x?token=***&team=***"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:PW-CANARY@hooks.example.com/x?token=Q-CANARY", "must not carry a user"),
        ("https://:PW-CANARY@hooks.example.com/x", "must not carry a user"),
        ("https://PW-CANARY@hooks.example.com/x", "must not carry a user"),
        ("https://hooks.example.com:99999/x?token=Q-CANARY", "port"),
    ],
)
def test_a_fleet_webhook_url_submit_would_refuse_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    """QA: `submit --webhook` refused a user:password in the URL, CLONEQUEUE_WEBHOOK_URL
    took it (and a port out of range), and every worker then failed each delivery."""
    message = config_error(monkeypatch, CLONEQUEUE_WEBHOOK_URL=url)
    assert message.startswith("CLONEQUEUE_WEBHOOK_URL"), message
    assert expected in message
    assert "CANARY" not in message
    assert "\n" not in message


def test_a_bad_sentinel_url_names_the_part_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = config_error(
        monkeypatch, CLONEQUEUE_REDIS_URL="sentinel://:pw-x@h1:26379;redis://:pw-x@h2:6379"
    )
    assert "CLONEQUEUE_REDIS_URL=" in message
    assert "sentinel://host:port" in message
    assert "pw-x" not in message


@pytest.mark.parametrize("store", ["not a url", "relative/dir", "file://relative/dir", "~/out"])
def test_an_artifact_store_that_is_a_relative_folder_is_refused(store: str) -> None:
    """QA: ``--artifacts relative/dir`` wrote under each worker's working directory."""
    from clonequeue.outputs.operate import check_targets

    with pytest.raises(InputError, match=r"--artifacts: .*absolute path \(file:///data/voices\)"):
        check_targets(None, store)


@pytest.mark.parametrize("store", ["http://127.0.0.1:9/x", "memory://foo", "gopher://x/"])
def test_an_artifact_store_clonequeue_cannot_write_to_is_refused(store: str) -> None:
    """QA: http:// was taken and crashed every download; memory:// lived in one worker."""
    from clonequeue.outputs.operate import check_targets

    with pytest.raises(InputError, match=r"is not a store clonequeue writes to: give a folder"):
        check_targets(None, store)


@pytest.mark.parametrize("store", ["file:///data/voices", "/data/voices", "s3://bucket/x"])
def test_an_artifact_store_by_absolute_path_or_url_is_taken(store: str) -> None:
    from clonequeue.outputs.operate import check_targets

    check_targets(None, store)
