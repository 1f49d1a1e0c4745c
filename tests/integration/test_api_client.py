"""Our API client against the simulator over real HTTP: what each kind of answer becomes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from clonequeue.api.client import ApiClient
from clonequeue.api.models import AudioSpec, CloneRequest
from clonequeue.errors import (
    ApiError,
    ApiUnavailableError,
    InsufficientBalanceError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
)
from clonequeue.local.stack import SimulatorAdmin
from clonequeue.simulator import RunningSimulator, SimConfig, serve_in_thread

TOKEN = "sim-token"
CLONE = CloneRequest(fileUrl="https://example.com/voice.mp3", contentText="Hello there")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimConfig(clone_queue_s=0.5, clone_processing_s=1)) as running:
        yield running


@pytest.fixture
def admin(sim: RunningSimulator) -> SimulatorAdmin:
    control = SimulatorAdmin(sim.url)
    control.reset()
    return control


@pytest.fixture
def client(sim: RunningSimulator, admin: SimulatorAdmin) -> Iterator[ApiClient]:
    with ApiClient(sim.url, SecretStr(TOKEN), connect_timeout_s=1, read_timeout_s=0.5) as api:
        yield api


def test_every_endpoint_round_trip(client: ApiClient, admin: SimulatorAdmin) -> None:
    clone = client.create_clone(CLONE)
    assert clone.id.startswith("audio_")
    assert clone.status == "queued"
    admin.advance_clock(5)
    done = client.get_task(clone.id)
    assert done.is_completed
    assert done.modelId
    assert done.audioUrl
    assert "traceId" in (done.model_extra or {})  # an undocumented field, tolerated
    audio = client.create_audio(AudioSpec(contentText="Hi <#0.3#> you").with_model(done.modelId))
    admin.advance_clock(60)
    assert client.get_task(audio.id).is_completed


def test_invalid_requests_never_reach_the_network(client: ApiClient, admin: SimulatorAdmin) -> None:
    with pytest.raises(ValidationError):
        client.create_clone(CloneRequest(fileUrl="/tmp/me.mp3"))
    assert admin.summary()["creates_total"] == 0
    assert not admin.ledger()["counts"]


def test_non_20000_on_http_200_is_an_error(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(balance_error="code200")
    admin.set_balance(0)
    with pytest.raises(InsufficientBalanceError) as info:
        client.create_clone(CLONE)
    assert info.value.http_status == 200
    assert info.value.code == 40200


def test_429_carries_retry_after(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(rate_limit_per_s=1)
    client.create_clone(CLONE)
    with pytest.raises(RateLimitedError) as info:
        client.create_clone(CLONE)
    assert info.value.retry_after_s is not None
    assert info.value.retry_after_s >= 1


def test_5xx_is_transient(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(error_5xx_rate=1.0)
    with pytest.raises(ApiUnavailableError) as info:
        client.create_clone(CLONE)
    assert info.value.http_status in (500, 502, 503)
    assert admin.summary()["creates_total"] == 0


def test_slow_create_past_the_read_timeout_is_outcome_unknown(
    client: ApiClient, admin: SimulatorAdmin
) -> None:
    admin.configure(slow_rate=1.0, slow_s=1.5)
    with pytest.raises(OutcomeUnknownError):
        client.create_clone(CLONE)
    assert admin.summary()["creates_total"] == 1  # it was created: never send it again


def test_slow_poll_past_the_read_timeout_is_transient(
    client: ApiClient, admin: SimulatorAdmin
) -> None:
    task = client.create_clone(CLONE)
    admin.configure(slow_rate=1.0, slow_s=1.5)
    with pytest.raises(ApiUnavailableError, match="read timeout"):
        client.get_task(task.id)


def test_lost_create_answer_is_outcome_unknown(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(lost_response_rate=1.0)
    with pytest.raises(OutcomeUnknownError):
        client.create_clone(CLONE)
    assert admin.summary()["lost_responses"] == 1


def test_refused_connection_was_not_sent(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(down="refuse", down_for_s=1.0)
    time.sleep(0.1)
    with pytest.raises(ApiUnavailableError):
        client.create_clone(CLONE)
    time.sleep(1.5)
    assert client.create_clone(CLONE).id


def test_unknown_task_is_rejected_with_the_apis_code(client: ApiClient) -> None:
    with pytest.raises(RejectedError) as info:
        client.get_task("audio_nope")
    assert info.value.code == 40400


def test_the_token_is_in_no_error_text(client: ApiClient, admin: SimulatorAdmin) -> None:
    admin.configure(error_5xx_rate=1.0)
    with pytest.raises(ApiError) as info:
        client.create_clone(CLONE)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert TOKEN not in repr(client)
