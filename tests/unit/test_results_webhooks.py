"""Webhook pieces without a network: target checks, signatures, the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from standardwebhooks.webhooks import Webhook

from clonequeue.config import load_settings
from clonequeue.config.webhook_url import UnsafeTargetError, check_url
from clonequeue.errors import ConfigError
from clonequeue.outputs import webhooks as wh
from clonequeue.outputs.artifacts import audio_stem, destination, safe_name
from clonequeue.outputs.plan import artifact_items
from clonequeue.outputs.targets import resolve

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"z" * 32).decode()


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.1/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://0.0.0.0/x", "private|reserved"),
    ],
)
def test_private_loopback_and_link_local_targets_are_refused(url: str, what: str) -> None:
    with pytest.raises(UnsafeTargetError, match=what):
        resolve(url, allow_private=False)
    assert resolve(url, allow_private=True).address  # allowed with the setting


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://x/", "ftp://h/x", "http://u:p@h.example/", "http:///x"]
)
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(UnsafeTargetError):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/x?token=QSECRET",  # QA: taken, then ValueError every 20-40 s
        "https://hooks.example.com:65536/x?token=QSECRET",
        "http://hooks.example.com:0/x?token=QSECRET",  # read as "no port": sent to :80
        "http://hooks.example.com:abc/x?token=QSECRET",
        "http://[::1/x?token=QSECRET",
        "http://exa mple.com/x?token=QSECRET",  # urllib3 cannot parse it
    ],
)
def test_a_url_with_a_bad_port_or_that_urllib3_cannot_parse_is_refused_at_submit(
    url: str,
) -> None:
    from clonequeue.errors import InputError
    from clonequeue.outputs.operate import check_targets

    with pytest.raises(UnsafeTargetError) as info:
        check_url(url)
    assert "QSECRET" not in str(info.value)  # a query value is never echoed
    with pytest.raises(InputError, match=r"^--webhook: webhook URL"):
        check_targets(url, None)


@pytest.mark.parametrize(
    "url", ["http://h.example:1/x", "https://h.example:65535/", "http://h.example:/x"]
)
def test_ports_1_to_65535_are_taken(url: str) -> None:
    check_url(url)


def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    target = resolve("http://127.0.0.1:8080/hook?a=1", allow_private=True)
    assert (target.address, target.port, target.path) == ("127.0.0.1", 8080, "/hook?a=1")


def test_every_secret_of_a_rotation_signs_and_the_library_verifies() -> None:
    body = wh.event_body("job.completed", 1_764_067_200.5, {"custom_id": "a"})
    sig = wh.signature([SECRET, OTHER], "msg_1", 1_764_067_200.5, body)
    assert len(sig.split(" ")) == 2
    assert all(s.startswith("v1,") for s in sig.split(" "))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1764067200", "webhook-signature": sig}
    for secret in (SECRET, OTHER):
        verifier = Webhook(secret)
        # the library refuses old timestamps; check the signature itself
        expected = verifier.sign("msg_1", wh.datetime.fromtimestamp(1_764_067_200, wh.UTC), body)
        assert expected in headers["webhook-signature"].split(" ")
    payload = json.loads(body)
    assert payload == {
        "type": "job.completed",
        "timestamp": "2025-11-25T10:40:00.500000Z",
        "data": {"custom_id": "a"},
    }


def test_a_big_record_is_sent_by_reference() -> None:
    record = {"custom_id": "a", "batch": "b", "status": "completed", "audios": ["x" * 30_000]}
    data = wh.job_event_data(record)
    assert data["truncated"] is True
    assert "clonequeue results b" in data["results"]
    assert len(wh.event_body("job.completed", 0, data)) < wh.MAX_PAYLOAD_BYTES


def test_the_schedule_and_retry_after() -> None:
    schedule = (0.0, 5.0, 300.0)
    assert wh.next_wait(schedule, 1, None) == 5.0
    assert wh.next_wait(schedule, 1, 60.0) == 60.0  # Retry-After wins when longer
    assert wh.next_wait(schedule, 3, None) is None  # spent: the delivery fails
    assert wh.next_wait(schedule, 1, 1e9) == 24 * 3600.0  # a day at most
    assert wh.retry_after("120", 0) == 120.0
    assert wh.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert wh.retry_after("soon", 0) is None


def test_the_default_schedule_spans_a_day_and_secrets_are_checked() -> None:
    settings = load_settings(env_file=None, redis_url="redis://127.0.0.1:1/0")
    assert settings.webhook_retry_schedule_s[:4] == (0.0, 5.0, 300.0, 1800.0)
    assert 24 * 3600 <= sum(settings.webhook_retry_schedule_s) <= 30 * 3600
    with pytest.raises(ConfigError, match="whsec_") as info:
        load_settings(env_file=None, webhook_secret="not-a-secret-value")
    assert "not-a-secret-value" not in str(info.value)
    ok = load_settings(env_file=None, webhook_secret=f"{SECRET},{OTHER}")
    assert ok.webhook_secret is not None


def test_artifact_keys_stay_inside_their_folder() -> None:
    assert destination("s3://b/p/", "march", "spk-1", "x.mp3") == "s3://b/p/march/spk-1/x.mp3"
    assert "/" not in safe_name("../../etc")
    assert safe_name("../../etc") != safe_name("__.._etc")
    assert safe_name("spk-1.a_b") == "spk-1.a_b"


@pytest.mark.parametrize("custom_id", ["preview", "Preview", "PREVIEW"])
def test_an_audio_named_preview_never_takes_the_clone_previews_file(custom_id: str) -> None:
    """Both wrote <job>/preview.wav, and one record's checksum was the other file's."""
    doc = {
        "id": "pv-1", "batch": "b", "state": "completed",
        "clone": {"state": "completed", "audio_url": "http://127.0.0.1:9/p.wav"},
        "audios": [{"custom_id": custom_id, "state": "completed",
                    "audio_url": "http://127.0.0.1:9/a.wav"}],
    }  # fmt: skip
    dests = [item["dest"] for _, item in artifact_items(doc, "file:///store")]
    assert dests[0] == "file:///store/b/pv-1/preview.wav"
    assert dests[1] == f"file:///store/b/pv-1/{audio_stem(custom_id)}.wav"
    assert audio_stem(custom_id).lower() != "preview"
    assert audio_stem("spk-1") == "spk-1"  # any other name as it was


@pytest.mark.parametrize("custom_id", ["../evil", ".hidden", ".", "..", "...x"])
def test_artifact_names_never_start_with_a_dot(custom_id: str) -> None:
    name = safe_name(custom_id)
    assert not name.startswith(".")
    assert "/" not in name
    plain = custom_id.replace(".", "_").replace("/", "_")
    assert name != safe_name(plain)  # the hash keeps it apart from an id already so spelt
    assert name.endswith(f"_{hashlib.sha1(custom_id.encode()).hexdigest()[:8]}")


def test_the_secret_comes_from_a_file_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "whsec"
    path.write_text(f"{SECRET}\n")
    settings = load_settings(env_file=None, webhook_secret_file=str(path))
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == SECRET
    assert SECRET in settings.secret_values()  # the log redactor masks it
    rotated = load_settings(env_file=None, webhook_secret=f"{SECRET} {OTHER}")
    assert {SECRET, OTHER} <= set(rotated.secret_values())
    with pytest.raises(ConfigError, match="not both"):
        load_settings(env_file=None, webhook_secret=SECRET, webhook_secret_file=str(path))


def test_an_unknown_artifact_store_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="nope:// is not a store clonequeue writes to"):
        load_settings(env_file=None, artifacts_url="nope://bucket/x")
    assert load_settings(env_file=None, artifacts_url="file:///data/voices").artifacts_url
