"""Audio entries of a job: a wrong type says what an audio is, and a custom_id that
collides with another audio's default id says which one and how to avoid it."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from clonequeue.jobspec import AudioIdCollision, JobSpec
from clonequeue.producers.columns import row_of
from clonequeue.producers.csv_reading import read_csv
from clonequeue.producers.rows import RowError, validate_row
from clonequeue.producers.sources import InputFile

CLONE = {"fileUrl": "https://v.example.com/a.mp3"}


def jsonl_results(tmp_path: Path, *jobs: dict[str, Any]) -> list[JobSpec | RowError]:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    with InputFile.from_arg(str(path)).open() as stream:
        return [validate_row(r) for r in stream.rows]


# --- 4. an audio of the wrong type: no hint about the 100-audio limit --------------------


@pytest.mark.parametrize(
    ("audio", "what"),
    [
        ("Hello", "a string"),
        (5, "a number"),
        ([{"contentText": "Hi"}], "an array"),
        (None, "null"),
        (True, "a boolean"),
    ],
)
def test_an_audio_that_is_not_an_object_says_what_an_audio_is(
    tmp_path: Path, audio: Any, what: str
) -> None:
    job = {"custom_id": "w-1", "clone": CLONE, "audios": [{"contentText": "Hi"}, audio]}
    (result,) = jsonl_results(tmp_path, job)
    assert isinstance(result, RowError)
    assert str(result) == (
        f"line 1 (w-1): audios[1]: is {what}, not an object; each audio is an object with "
        'the API\'s audio fields, e.g. {"contentText": "Hello"}'
    )
    assert (result.field, "100" in result.rule) == ("audios[1]", False)


def test_too_many_audios_still_names_the_limit(tmp_path: Path) -> None:
    job = {"custom_id": "w-2", "clone": CLONE, "audios": [{"contentText": "Hi"}] * 101}
    (result,) = jsonl_results(tmp_path, job)
    assert str(result) == (
        "line 1 (w-2): audios: 101 given; a job has at most 100 audios (clonequeue's limit): "
        "split it into several jobs, each with its own custom_id"
    )


def test_a_parquet_or_frame_audio_that_is_not_a_struct_gets_the_same_words() -> None:
    row = row_of({"custom_id": "w-3", "fileUrl": CLONE["fileUrl"], "audios": ["Hello"]}, 4)
    result = validate_row(row)
    assert isinstance(result, RowError)
    assert str(result) == (
        "line 4 (w-3): audios[0]: is a string, not an object; each audio is an object with "
        'the API\'s audio fields, e.g. {"contentText": "Hello"}'
    )


# --- 5. a custom_id that is another audio's default id ------------------------------------

DEFAULT_RULE = "an audio without one is named <job custom_id>-<n>, n its position in the job from 1"


def test_a_custom_id_equal_to_an_earlier_audios_default_id_names_that_audio(
    tmp_path: Path,
) -> None:
    job = {
        "custom_id": "aj",
        "clone": CLONE,
        "audios": [{"contentText": "One"}, {"custom_id": "aj-1", "contentText": "Two"}],
    }
    (result,) = jsonl_results(tmp_path, job)
    assert isinstance(result, RowError)
    assert str(result) == (
        "line 1 (aj): audios[1].custom_id: 'aj-1' is also the default id of audios[0], which "
        f"has no custom_id ({DEFAULT_RULE}); set a custom_id on audios[0], or use another id "
        "here"
    )
    assert result.field == "audios[1].custom_id"


def test_a_default_id_equal_to_an_earlier_audios_custom_id_names_that_audio(
    tmp_path: Path,
) -> None:
    job = {
        "custom_id": "aj",
        "clone": CLONE,
        "audios": [{"custom_id": "aj-2", "contentText": "One"}, {"contentText": "Two"}],
    }
    (result,) = jsonl_results(tmp_path, job)
    assert str(result) == (
        "line 1 (aj): audios[1].custom_id: not given, so it is 'aj-2' by default "
        f"({DEFAULT_RULE}), which is already the custom_id of audios[0]; set a custom_id on "
        "audios[1], or give audios[0] another"
    )


def test_the_same_custom_id_given_twice_keeps_its_message(tmp_path: Path) -> None:
    job = {
        "custom_id": "aj",
        "clone": CLONE,
        "audios": [{"custom_id": "x", "contentText": "1"}, {"custom_id": "x", "contentText": "2"}],
    }
    (result,) = jsonl_results(tmp_path, job)
    assert str(result) == "line 1 (aj): audios[1].custom_id 'x' is used twice in this job"


def test_a_csv_default_id_collision_names_the_lines() -> None:
    text = (
        "custom_id,fileUrl,audio_custom_id,audio_contentText\n"
        "aj,https://v.example.com/a.mp3,,One\n"
        "aj,https://v.example.com/a.mp3,aj-1,Two\n"
        "ok,https://v.example.com/b.mp3,,Three\n"
    )
    results = [validate_row(r) for r in read_csv(io.StringIO(text, newline=""))]
    assert [str(r) for r in results if isinstance(r, RowError)] == [
        "line 2 (aj): audio_custom_id (line 3): 'aj-1' is also the default id of the audio on "
        f"line 2, which has no audio_custom_id ({DEFAULT_RULE}); set an audio_custom_id on "
        "the audio on line 2, or use another id here"
    ]
    assert [r.custom_id for r in results if isinstance(r, JobSpec)] == ["ok"]


def test_jobspec_built_directly_raises_with_the_same_words() -> None:
    with pytest.raises(ValueError, match=r"'aj-1' is also the default id of audios\[0\]"):
        JobSpec.model_validate(
            {
                "custom_id": "aj",
                "clone": CLONE,
                "audios": [{"contentText": "One"}, {"custom_id": "aj-1", "contentText": "Two"}],
            }
        )


def test_the_collision_survives_pickling_with_its_words() -> None:
    collision = AudioIdCollision("aj-1", 0, 1, (None, "aj-1"))
    copy = pickle.loads(pickle.dumps(collision))
    assert (str(copy), copy.given) == (str(collision), (None, "aj-1"))


def test_numpy_scalars_in_dict_rows_validate_as_plain_numbers() -> None:
    """QA: ``np.int64`` for pitch and ``np.bool_`` for subtitleEnable were rejected in
    dict rows (``df.to_dict("records")``), while ``np.float64`` passed."""
    np = pytest.importorskip("numpy", reason="numpy is not installed here")
    from clonequeue.producers.rows import spec_from

    row = {
        "custom_id": "np-1",
        "clone": {"fileUrl": "https://v.example.com/a.mp3"},
        "audios": [{"contentText": "Hi", "pitch": np.int64(3), "subtitleEnable": np.bool_(True),
                    "speed": np.float64(1.5)}],
    }  # fmt: skip
    spec = spec_from(row, 1)
    assert not isinstance(spec, RowError), spec
    audio = spec.audios[0]
    assert (audio.pitch, audio.subtitleEnable, audio.speed) == (3, True, 1.5)
