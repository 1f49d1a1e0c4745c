"""Every printable form of a secret is masked; innocent text is left alone."""

from __future__ import annotations

import io
import json
import logging

import pytest

from clonequeue.config import Settings
from clonequeue.logs import setup_logging
from clonequeue.redaction import REDACTED, Redactor
from tests.leak_forms import CANARY, PLAIN, leak_forms, leaked


@pytest.mark.parametrize("name", sorted(leak_forms()))
def test_each_form_of_the_secret_is_masked(name: str) -> None:
    text, needles = leak_forms()[name]
    assert any(n in text for n in needles)  # the form really holds the secret
    redacted = Redactor([CANARY]).redact(text)
    assert REDACTED in redacted
    assert [n for n in needles if n in redacted] == []


def test_the_needles_catch_a_redactor_that_knows_only_the_raw_form() -> None:
    class RawOnly(Redactor):
        def redact(self, text: str) -> str:
            return text.replace(CANARY, REDACTED)

    missed = [name for name, (text, _) in leak_forms().items() if leaked(RawOnly().redact(text))]
    assert set(missed) >= {"header ValueError repr", "json", "url", "base64", "hex"}


def test_innocent_text_and_other_secrets_are_untouched() -> None:
    redactor = Redactor([CANARY])
    text = "created audio_1234 for job-00001 in 0.2 s; https://x.example/a.mp3 SGVsbG8="
    assert redactor.redact(text) == text
    redactor.add(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])  # a webhook secret registered later
    assert redactor.redact(f"{CANARY} whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == (
        f"{REDACTED} {REDACTED}"
    )


def test_nested_values_are_redacted() -> None:
    value = {"exception": f"E({CANARY!r})", "args": [CANARY, 3], "t": (CANARY,)}
    assert Redactor([CANARY]).redact_value(value) == {
        "exception": f"E('{REDACTED}')",
        "args": [REDACTED, 3],
        "t": (REDACTED,),
    }


def test_settings_list_every_secret_field() -> None:
    settings = Settings(
        _env_file=None, api_token="tok_abcdefgh", flower_basic_auth="ops:pw-12345678"
    )
    assert set(settings.secret_values()) >= {"tok_abcdefgh", "ops:pw-12345678", "pw-12345678"}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_mask_every_form_in_message_args_and_traceback(log_format: str) -> None:
    settings = Settings(_env_file=None, api_token=CANARY, log_format=log_format)
    stream = io.StringIO()
    setup_logging(settings, stream=stream)
    log = logging.getLogger("tests.redaction")
    try:
        for name, (text, _) in leak_forms().items():
            log.warning("form %s: %s", name, text)
            log.info(text, stack_info=True)
        try:
            try:
                raise ValueError(leak_forms()["header ValueError repr"][0])
            except ValueError as exc:
                raise RuntimeError("wrapped") from exc
        except RuntimeError:
            log.exception("a traceback with a chained cause")
    finally:
        logging.getLogger().handlers.clear()
    written = stream.getvalue()
    assert leaked(written) == []
    assert written.count(REDACTED) >= len(leak_forms())
    if log_format == "json":
        lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
        assert any("Traceback" in entry["msg"] or "exc" in entry for entry in lines)
        assert all(p not in line for p in PLAIN for line in written.splitlines())


def test_beat_s_sends_are_not_logged_but_its_other_lines_are() -> None:
    """QA: beat said every send at INFO, 36 lines a minute of nothing."""
    stream = io.StringIO()
    setup_logging(Settings(_env_file=None), stream=stream)
    beat = logging.getLogger("celery.beat")
    try:
        beat.info("beat: Starting...")
        beat.info("Scheduler: Sending due task %s (%s)", "results", "clonequeue.results")
        beat.error("Message Error: Couldn't apply scheduled task results")
    finally:
        logging.getLogger().handlers.clear()
    written = stream.getvalue()
    assert "beat: Starting..." in written
    assert "Sending due task" not in written
    assert "Couldn't apply scheduled task results" in written
