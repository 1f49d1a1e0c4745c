"""Every documented request rule, one test each; each error names the field and the rule."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from clonequeue.api.models import (
    AudioRequest,
    AudioSpec,
    CloneRequest,
    RemoteTask,
    describe_validation_error,
)
from clonequeue.constants import MAX_AUDIOS_PER_JOB
from clonequeue.jobspec import JobSpec

GOOD_URL = "https://data.example.com/voices/a.mp3"


def errors_of(model: type, **fields: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model(**fields)
    return describe_validation_error(info.value)


def only_error(model: type, **fields: object) -> str:
    lines = errors_of(model, **fields)
    assert len(lines) == 1, lines
    return lines[0]


# --- clone: fileUrl ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ext", ["mp3", "ogg", "wav", "m4a", "aac", "mp4", "avi", "mov", "mkv", "flv", "MP3", "Wav"]
)
def test_file_url_accepts_every_documented_type(ext: str) -> None:
    assert CloneRequest(fileUrl=f"https://ex.com/a.{ext}").fileUrl.endswith(ext)


def test_file_url_query_string_does_not_hide_the_extension() -> None:
    assert CloneRequest(fileUrl="https://ex.com/a.mp3?sig=abc&x=1")


def test_file_url_rejects_other_extensions() -> None:
    message = only_error(CloneRequest, fileUrl="https://ex.com/notes.txt")
    assert message.startswith("fileUrl: extension .txt is not an audio or video type")


def test_file_url_needs_an_extension() -> None:
    assert "fileUrl: has no file extension" in only_error(CloneRequest, fileUrl="https://ex.com/a")


@pytest.mark.parametrize("url", ["ftp://ex.com/a.mp3", "ex.com/a.mp3", "s3://bucket/a.mp3"])
def test_file_url_must_be_http_or_https(url: str) -> None:
    message = only_error(CloneRequest, fileUrl=url)
    assert message.startswith("fileUrl: ")
    assert "http:// and https://" in message


@pytest.mark.parametrize(
    "url", ["/home/me/a.mp3", "./a.mp3", "~/a.mp3", "C:\\voices\\a.mp3", "file:///home/me/a.mp3"]
)
def test_file_url_rejects_local_paths(url: str) -> None:
    message = only_error(CloneRequest, fileUrl=url)
    assert message.startswith("fileUrl: ")
    assert "local" in message


@pytest.mark.parametrize(
    "url", ["https://ex.com/声音.mp3", "https://例子.com/a.mp3", "https://ex.com/%E5%A3%B0.mp3"]
)
def test_file_url_rejects_chinese_characters(url: str) -> None:
    assert "fileUrl: contains Chinese characters" in only_error(CloneRequest, fileUrl=url)


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "10.0.0.5", "192.168.1.2", "[::1]", "intranet"]
)
def test_file_url_must_be_publicly_reachable(host: str) -> None:
    assert "is not public" in only_error(CloneRequest, fileUrl=f"http://{host}/a.mp3")


def test_file_url_rejects_whitespace() -> None:
    assert "whitespace" in only_error(CloneRequest, fileUrl="https://ex.com/my voice.mp3")


def test_file_url_is_required() -> None:
    assert only_error(CloneRequest) == "fileUrl: is required"


@pytest.mark.parametrize(
    ("port", "shown"), [("99999", "99999"), ("0", "0"), ("65536", "65536"), ("abc", "abc")]
)
def test_file_url_port_must_be_1_to_65535(port: str, shown: str) -> None:
    message = only_error(CloneRequest, fileUrl=f"https://x.example.com:{port}/a.mp3")
    assert message == f"fileUrl: port {shown} is not a port number; a port is 1 to 65535"


def test_file_url_with_a_port_in_range_is_fine() -> None:
    assert CloneRequest(fileUrl="https://x.example.com:8443/a.mp3")


@pytest.mark.parametrize(
    "url", ["https://user:pw@x.example.com/a.mp3", "https://token@x.example.com/a.mp3"]
)
def test_file_url_must_not_carry_credentials(url: str) -> None:
    message = only_error(CloneRequest, fileUrl=url)
    assert message == (
        "fileUrl: contains a user name or password (user:password@); it would be stored in "
        "Redis and sent to the provider, so give a URL without them (e.g. a pre-signed link)"
    )
    assert "pw" not in message


# --- clone: contentText, soundVersion, language -------------------------------------------


def test_preview_text_at_most_270_characters() -> None:
    assert CloneRequest(fileUrl=GOOD_URL, contentText="x" * 270)
    message = only_error(CloneRequest, fileUrl=GOOD_URL, contentText="x" * 271)
    assert message == "contentText: is 271 characters long; at most 270 allowed"


def test_preview_text_counts_code_points_not_bytes() -> None:
    assert CloneRequest(fileUrl=GOOD_URL, contentText="语" * 270)


def test_preview_text_must_not_be_blank() -> None:
    assert "contentText: must not be empty" in only_error(
        CloneRequest, fileUrl=GOOD_URL, contentText="  "
    )


def test_sound_version_is_v1_or_v2() -> None:
    assert CloneRequest(fileUrl=GOOD_URL, soundVersion="v2")
    assert only_error(CloneRequest, fileUrl=GOOD_URL, soundVersion="v3").startswith(
        "soundVersion: Input should be 'v1' or 'v2'"
    )


def test_language_must_not_be_blank() -> None:
    assert only_error(CloneRequest, fileUrl=GOOD_URL, language="").startswith("language: ")


def test_unknown_fields_are_reported_not_dropped() -> None:
    assert only_error(CloneRequest, fileUrl=GOOD_URL, langauge="English") == (
        "langauge: is not a field of this request (check the spelling)"
    )


def test_clone_body_omits_unset_fields() -> None:
    assert CloneRequest(fileUrl=GOOD_URL, language="English").to_body() == {
        "fileUrl": GOOD_URL,
        "language": "English",
    }


# --- audio: contentText and pause markers ---------------------------------------------------


def test_audio_text_is_required() -> None:
    assert only_error(AudioSpec) == "contentText: is required"


def test_audio_text_at_most_10000_characters() -> None:
    assert AudioSpec(contentText="x" * 10_000)
    assert only_error(AudioSpec, contentText="x" * 10_001) == (
        "contentText: is 10001 characters long; at most 10000 allowed"
    )


@pytest.mark.parametrize("marker", ["<#0.01#>", "<#99.99#>", "<#1#>", "<#0.5#>", "<#12.3#>"])
def test_pause_markers_in_range_are_accepted(marker: str) -> None:
    assert AudioSpec(contentText=f"Hello {marker} world")


@pytest.mark.parametrize("marker", ["<#0#>", "<#0.00#>", "<#100#>", "<#99.991#>"])
def test_pause_markers_out_of_range_or_too_precise(marker: str) -> None:
    message = only_error(AudioSpec, contentText=f"Hello {marker} world")
    assert message.startswith(f"contentText: pause marker '{marker}' at position 6")
    assert "out of range" in message or "more than two decimals" in message


# ...and digits of other scripts: \d took them, the estimate counted the marker as 0
# characters, and the API will read it as text and bill it (QA pass)
@pytest.mark.parametrize(
    "marker",
    ["<#abc#>", "<#-1#>", "<# 1 #>", "<#1,5#>", "<##>", "<#৯৯.৯৯#>", "<#١#>", "<#１.５#>"],
)
def test_malformed_pause_markers(marker: str) -> None:
    assert "is malformed" in only_error(AudioSpec, contentText=f"Hi {marker} there")


def test_unclosed_pause_marker() -> None:
    assert "unclosed pause marker" in only_error(AudioSpec, contentText="Hi <#0.5 there")


def test_text_of_only_pause_markers_has_nothing_to_speak() -> None:
    assert "only pause markers" in only_error(AudioSpec, contentText="<#1#> <#2#>")


# --- audio: emotion, speed, vol, pitch, subtitles -----------------------------------------------


@pytest.mark.parametrize(
    "emotion", ["happy", "sad", "angry", "fearful", "disgusted", "surprised", "neutral"]
)
def test_documented_emotions(emotion: str) -> None:
    assert AudioSpec(contentText="Hi", emotion=emotion)


def test_unknown_emotion() -> None:
    assert only_error(AudioSpec, contentText="Hi", emotion="bored").startswith("emotion: ")


@pytest.mark.parametrize(
    ("speed", "ok"), [(0.5, True), (2, True), (1.1, True), (0.49, False), (2.01, False)]
)
def test_speed_between_half_and_two(speed: float, ok: bool) -> None:
    if ok:
        assert AudioSpec(contentText="Hi", speed=speed)
    else:
        assert only_error(AudioSpec, contentText="Hi", speed=speed).startswith("speed: ")


@pytest.mark.parametrize(
    ("vol", "ok"), [(0.01, True), (10, True), (0, False), (10.5, False), (-1, False)]
)
def test_vol_above_zero_up_to_ten(vol: float, ok: bool) -> None:
    if ok:
        assert AudioSpec(contentText="Hi", vol=vol)
    else:
        assert only_error(AudioSpec, contentText="Hi", vol=vol).startswith("vol: ")


@pytest.mark.parametrize(
    ("pitch", "ok"), [(-12, True), (12, True), (0, True), (-13, False), (13, False)]
)
def test_pitch_between_minus_and_plus_twelve(pitch: int, ok: bool) -> None:
    if ok:
        assert AudioSpec(contentText="Hi", pitch=pitch)
    else:
        assert only_error(AudioSpec, contentText="Hi", pitch=pitch).startswith("pitch: ")


@pytest.mark.parametrize("pitch", [1.5, 2.0, "3", True])
def test_pitch_must_be_an_integer(pitch: object) -> None:
    assert only_error(AudioSpec, contentText="Hi", pitch=pitch).startswith("pitch: ")


@pytest.mark.parametrize("field", ["speed", "vol"])
def test_numbers_must_be_numbers(field: str) -> None:
    assert only_error(AudioSpec, contentText="Hi", **{field: "1.0"}).startswith(f"{field}: ")


def test_subtitle_enable_must_be_a_bool() -> None:
    assert only_error(AudioSpec, contentText="Hi", subtitleEnable="yes").startswith(
        "subtitleEnable: "
    )


def test_subtitle_type_word_only() -> None:
    assert AudioSpec(contentText="Hi", subtitleEnable=True, subtitleType="word")
    assert only_error(
        AudioSpec, contentText="Hi", subtitleEnable=True, subtitleType="line"
    ).startswith("subtitleType: ")


def test_subtitle_type_without_subtitles_is_a_mistake() -> None:
    assert only_error(AudioSpec, contentText="Hi", subtitleType="word").startswith(
        "subtitleType: is set but subtitleEnable is not true"
    )


def test_audio_request_needs_a_model_id() -> None:
    assert only_error(AudioRequest, contentText="Hi") == "modelId: is required"
    request = AudioSpec(contentText="Hi", emotion="sad").with_model("model_1")
    assert request.to_body() == {"contentText": "Hi", "emotion": "sad", "modelId": "model_1"}


# --- the query answer ----------------------------------------------------------------------


def test_remote_task_tolerates_unknown_fields_and_statuses() -> None:
    task = RemoteTask.model_validate({"id": "audio_1", "status": "archived", "traceId": "t"})
    assert not task.is_terminal
    assert task.model_extra == {"traceId": "t"}


def test_remote_task_error_text_from_dict_or_string() -> None:
    assert RemoteTask(id="a", status="failed", error={"message": "too short"}).error_text() == (
        "too short"
    )
    assert RemoteTask(id="a", status="failed", error="bad audio").error_text() == "bad audio"
    assert "without a reason" in RemoteTask(id="a", status="failed").error_text()


SPEED = "the API accepts 0.5 to 2 (default 1)"
VOL = "the API accepts more than 0, up to 10 (default 1)"
PITCH = "the API accepts whole numbers from -12 to 12 (default 0)"


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        ({"speed": 2.5}, f"audios[0].speed: 2.5 is out of range; {SPEED}"),
        ({"speed": 0.1}, f"audios[0].speed: 0.1 is out of range; {SPEED}"),
        ({"vol": 0}, f"audios[0].vol: 0 is out of range; {VOL}"),
        ({"vol": 11}, f"audios[0].vol: 11 is out of range; {VOL}"),
        ({"pitch": 13}, f"audios[0].pitch: 13 is out of range; {PITCH}"),
        ({"pitch": -13}, f"audios[0].pitch: -13 is out of range; {PITCH}"),
        ({"speed": "fast"}, f"audios[0].speed: Input should be a valid number; {SPEED}"),
    ],
)
def test_every_ranged_field_names_its_range_and_the_api_rule(
    audio: dict[str, object], expected: str
) -> None:
    row = {
        "custom_id": "r",
        "clone": {"fileUrl": "https://v.example.com/r.mp3"},
        "audios": [{"contentText": "Hello", **audio}],
    }
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(row)
    assert describe_validation_error(exc.value) == [expected]


def test_too_many_audios_says_how_many_and_what_to_do() -> None:
    row = {
        "custom_id": "r",
        "clone": {"fileUrl": "https://v.example.com/r.mp3"},
        "audios": [{"contentText": "Hello"}] * (MAX_AUDIOS_PER_JOB + 1),
    }
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate(row)
    assert describe_validation_error(exc.value) == [
        f"audios: {MAX_AUDIOS_PER_JOB + 1} given; a job has at most {MAX_AUDIOS_PER_JOB} audios "
        "(clonequeue's limit): split it into several jobs, each with its own custom_id"
    ]


def test_a_lone_surrogate_is_a_rejected_row_not_a_crash() -> None:
    """A JSON `\\ud800` escape with no pair crashed estimate and submit with a traceback
    (hashing the row), and the good rows went down with it (QA pass)."""
    from clonequeue.producers.rows import Row, RowError, validate_row

    data = json.loads(
        '{"custom_id": "s1", "clone": {"fileUrl": "https://v.example.com/s.mp3"},'
        ' "audios": [{"contentText": "ab\\ud800cd"}]}'
    )
    error = validate_row(Row(3, data=data))
    assert isinstance(error, RowError)
    assert (error.line, error.custom_id, error.field) == (3, "s1", "audios[0].contentText")
    assert "unpaired surrogate" in error.rule
