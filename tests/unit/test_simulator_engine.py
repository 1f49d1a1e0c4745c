"""The simulator's logic with a hand-driven clock: lifecycles, billing, expiry, faults, ledger."""

from __future__ import annotations

import pytest

from clonequeue.api.billing import billed_chars, preview_chars
from clonequeue.constants import MODEL_ID_TTL_S
from clonequeue.simulator import ConfigPatchError, Engine, FakeTime, SimClock, SimConfig
from clonequeue.simulator.accounts import fingerprint
from clonequeue.simulator.codes import Rejection
from clonequeue.simulator.config import patched
from clonequeue.simulator.faults import RateWindow
from clonequeue.simulator.tasks import Kind

TOKEN = "sim-token"
CLONE = {"fileUrl": "https://example.com/voice.mp3"}


class Sim:
    """An engine on fake clocks: ``sim_time`` for the API, ``real_time`` for rate windows."""

    def __init__(self, **knobs: object) -> None:
        self.sim_time = FakeTime()
        self.real_time = FakeTime(100.0)
        clock = SimClock(time_fn=self.sim_time, monotonic_fn=self.real_time)
        knobs = {"clone_queue_s": 1.0, "clone_processing_s": 2.0, **knobs}
        self.engine = Engine(SimConfig.model_validate(knobs), clock=clock)
        self.account = self.engine.authenticate(f"Bearer {TOKEN}")

    def clone(self, **fields: object):
        return self.engine.create(Kind.CLONE, self.account, {**CLONE, **fields}).task

    def audio(self, model_id: str, text: str = "Hello there.", **fields: object):
        body = {"modelId": model_id, "contentText": text, **fields}
        return self.engine.create(Kind.AUDIO, self.account, body).task

    def completed_model(self) -> str:
        task = self.clone()
        self.sim_time.tick(3)
        data = self.engine.poll(self.account, task.id)
        assert data["status"] == "completed"
        return str(data["modelId"])

    @property
    def balance(self) -> float:
        return self.engine.balances()[self.account]


def rejection(call, *args: object, **kwargs: object) -> Rejection:
    with pytest.raises(Rejection) as info:
        call(*args, **kwargs)
    return info.value


# --- config --------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_knobs_and_keeps_tokens() -> None:
    config = SimConfig(tokens=("a", "b"), latency_s=0.5)
    new = patched(config, {"failure_rate": 0.25})
    assert new.failure_rate == 0.25
    assert new.latency_s == 0.5
    assert new.tokens == ("a", "b")
    assert "tokens" not in new.public()


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"failure_rate": 2}, "failure_rate"),
        ({"nonsense": 1}, "nonsense"),
        ({"tokens": ["x"]}, "only be set at start"),
        ({"down": "refuse"}, "down_for_s"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_patches_are_refused_with_the_reason(patch: object, words: str) -> None:
    with pytest.raises(ConfigPatchError, match=words):
        patched(SimConfig(), patch)


# --- lifecycle -----------------------------------------------------------------------------------


def test_a_clone_goes_queued_processing_completed_on_the_simulated_clock() -> None:
    sim = Sim()
    task = sim.clone()
    statuses = []
    for _ in range(4):
        statuses.append(sim.engine.poll(sim.account, task.id)["status"])
        sim.sim_time.tick(1)
    assert statuses == ["queued", "processing", "processing", "completed"]
    data = sim.engine.poll(sim.account, task.id)
    assert data["modelId"].startswith("model_")
    assert data["audioUrl"] == f"https://cdn.sim.jimmyai.local/{task.id}.mp3"
    assert data["model"] == "soundCloningClone"
    assert "traceId" in data


def test_clock_advance_moves_tasks_without_waiting() -> None:
    sim = Sim()
    task = sim.clone()
    sim.engine.clock.advance(10)
    assert sim.engine.poll(sim.account, task.id)["status"] == "completed"
    with pytest.raises(ValueError, match="forward"):
        sim.engine.clock.advance(-1)


def test_audio_sets_subtitles_only_when_asked() -> None:
    sim = Sim(audio_queue_s=0, audio_processing_s=1)
    model = sim.completed_model()
    plain = sim.audio(model)
    subtitled = sim.audio(model, subtitleEnable=True)
    sim.sim_time.tick(1)
    plain_data = sim.engine.poll(sim.account, plain.id)
    subtitled_data = sim.engine.poll(sim.account, subtitled.id)
    assert plain_data["status"] == subtitled_data["status"] == "completed"
    assert plain_data["subtitleFile"] is None
    assert subtitled_data["subtitleFile"].endswith(".srt")
    assert plain_data["modelId"] == model


def test_fail_triggers_fail_with_a_reason() -> None:
    sim = Sim(audio_queue_s=0, audio_processing_s=1)
    clone = sim.clone(fileUrl="https://example.com/__fail__.mp3")
    audio = sim.audio(sim.completed_model(), text="say __fail__ now")
    sim.sim_time.tick(3)
    clone_data = sim.engine.poll(sim.account, clone.id)
    assert clone_data["status"] == "failed"
    assert "between 15 and 60 seconds" in clone_data["error"]
    assert clone_data["modelId"] is None
    assert sim.engine.poll(sim.account, audio.id)["status"] == "failed"


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 20)])
def test_failure_rate_decides_outcomes(rate: float, expected: int) -> None:
    sim = Sim(failure_rate=rate)
    tasks = [sim.clone(contentText=f"line {i}") for i in range(20)]
    assert sum(task.error is not None for task in tasks) == expected


def test_a_seed_makes_outcomes_repeatable() -> None:
    def run(seed: int) -> list[bool]:
        sim = Sim(seed=seed, failure_rate=0.5, jitter_ratio=0.3)
        return [sim.clone(contentText=f"line {i}").error is None for i in range(10)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert True in run(7)
    assert False in run(7)


def test_a_new_simulator_never_hands_out_an_earlier_ones_ids() -> None:
    # a worker still polling a task of a simulator that restarted must hear "not
    # found", not the answer of another job's task that got the same id
    first, second = Sim(seed=7), Sim(seed=7)
    ids = {first.clone(contentText=f"line {i}").id for i in range(10)}
    assert not ids & {second.clone(contentText=f"line {i}").id for i in range(10)}


def test_jitter_keeps_durations_within_the_ratio() -> None:
    sim = Sim(jitter_ratio=0.5, clone_queue_s=10, clone_processing_s=10)
    tasks = [sim.clone(contentText=f"line {i}") for i in range(30)]
    queues = {t.processing_at - t.created_at for t in tasks}
    assert len(queues) > 1
    assert all(5 <= q <= 15 for q in queues)


# --- billing, balance, refunds -------------------------------------------------------------------


def test_charges_follow_the_billing_rules() -> None:
    sim = Sim(price_per_10k_chars=10_000, voice_fee=5)
    default_clone = sim.clone()
    assert default_clone.chars == preview_chars(None)
    assert default_clone.charge == preview_chars(None)
    audio = sim.audio(sim.completed_model(), text="Hi <#0.5#> there")
    assert audio.chars == billed_chars("Hi <#0.5#> there") == len("Hi  there")
    assert audio.charge == audio.chars + 5
    assert sim.balance == pytest.approx(1000 * 1 - default_clone.charge - audio.charge - 76)


def test_insufficient_balance_creates_nothing() -> None:
    sim = Sim(initial_balance=0.001)
    refused = rejection(sim.clone)
    assert (refused.http_status, refused.code, refused.msg) == (402, 40200, "insufficient balance")
    assert sim.engine.tasks == {}
    assert sim.engine.ledger.creates == []


def test_balance_error_code200_answers_http_200_with_the_error_code() -> None:
    sim = Sim(initial_balance=0, balance_error="code200")
    refused = rejection(sim.clone)
    assert (refused.http_status, refused.code) == (200, 40200)


def test_failed_tasks_are_refunded_once_their_failure_time_passes() -> None:
    sim = Sim(price_per_10k_chars=100)
    task = sim.clone(fileUrl="https://example.com/__fail__.mp3")
    assert sim.balance == pytest.approx(1000 - task.charge)
    sim.sim_time.tick(2.9)
    assert sim.balance == pytest.approx(1000 - task.charge)
    sim.sim_time.tick(0.1)
    assert sim.balance == pytest.approx(1000)
    assert sim.balance == pytest.approx(1000)  # not twice
    refunds = sim.engine.ledger_json()["refunds"]
    assert refunds == [{"task_id": task.id, "amount": task.charge, "at": task.finished_at}]


def test_a_due_refund_pays_for_the_next_create() -> None:
    sim = Sim(initial_balance=0.02, price_per_10k_chars=2)  # one default clone costs 0.0152
    sim.clone(fileUrl="https://example.com/__fail__.mp3")
    assert rejection(sim.clone).code == 40200
    sim.sim_time.tick(3)
    sim.clone()  # the refund became due and was seen by the balance check


def test_set_balance_tops_up_and_adds_accounts() -> None:
    sim = Sim()
    sim.engine.accounts.set_balance(TOKEN, 5)
    assert sim.balance == 5
    account = sim.engine.accounts.set_balance("other", 7)
    assert account == fingerprint("other")
    assert len(account) == 12
    assert sim.engine.authenticate("Bearer other") == account


# --- modelId expiry ------------------------------------------------------------------------------


def test_an_unused_model_expires_three_days_after_its_clone_completes() -> None:
    sim = Sim()
    model = sim.completed_model()
    sim.sim_time.tick(MODEL_ID_TTL_S - 10)
    sim.audio(model)  # still valid: and now activated for good
    sim.sim_time.tick(30 * 86400)
    sim.audio(model)

    other = sim.completed_model()
    sim.sim_time.tick(MODEL_ID_TTL_S + 1)
    expired = rejection(sim.audio, other)
    assert (expired.http_status, expired.code) == (400, 40010)
    assert "expired" in expired.msg
    assert "clone the voice again" in expired.msg


def test_unknown_or_unfinished_models_are_refused() -> None:
    sim = Sim()
    assert rejection(sim.audio, "model_nope").code == 40004
    running = sim.clone()
    assert running.model_id is not None
    assert rejection(sim.audio, running.model_id).code == 40004
    other = sim.engine.accounts.set_balance("other-token", 10)
    model = sim.completed_model()
    body = {"modelId": model, "contentText": "hi"}
    assert rejection(sim.engine.create, Kind.AUDIO, other, body).code == 40004


# --- validation and auth -------------------------------------------------------------------------


def test_invalid_bodies_get_every_rule_in_one_message() -> None:
    sim = Sim()
    bad = rejection(sim.engine.create, Kind.CLONE, sim.account, {"fileUrl": "/x.txt", "x": 1})
    assert (bad.http_status, bad.code) == (400, 40000)
    assert bad.msg.startswith("fileUrl: is a local path")
    assert "; x: is not a field" in bad.msg
    assert rejection(sim.engine.create, Kind.CLONE, sim.account, [1]).code == 40000


@pytest.mark.parametrize("header", [None, "", "Bearer wrong", "Basic sim-token", "sim-token"])
def test_unknown_or_missing_tokens_are_401(header: str | None) -> None:
    refused = rejection(Sim().engine.authenticate, header)
    assert (refused.http_status, refused.code) == (401, 40100)


def test_polls_of_unknown_or_foreign_tasks_are_404() -> None:
    sim = Sim()
    task = sim.clone()
    assert rejection(sim.engine.poll, sim.account, "audio_nope").http_status == 404
    other = sim.engine.accounts.set_balance("other", 1)
    assert rejection(sim.engine.poll, other, task.id).code == 40400


# --- faults --------------------------------------------------------------------------------------


def test_rate_window_allows_n_per_real_second_and_says_when_to_retry() -> None:
    window = RateWindow()
    assert window.admit(None, 0.0) is None
    assert [window.admit(2, t) for t in (0.0, 0.1)] == [None, None]
    assert window.admit(2, 0.2) == 1
    assert window.admit(2, 1.05) is None  # the first one left the window


def test_rate_limit_uses_real_time_not_the_simulated_clock() -> None:
    sim = Sim(rate_limit_per_s=1)
    sim.engine.admit()
    sim.engine.clock.advance(3600)
    limited = rejection(sim.engine.admit)
    assert (limited.http_status, limited.code, limited.retry_after_s) == (429, 42900, 1)
    sim.real_time.tick(1)
    sim.engine.admit()


def test_error_5xx_rate_answers_5xx_before_any_effect() -> None:
    sim = Sim(error_5xx_rate=1.0)
    statuses = {rejection(sim.engine.admit).http_status for _ in range(30)}
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1
    sim.engine.patch_config({"error_5xx_rate": 0})
    sim.engine.admit()


def test_down_5xx_ends_by_itself_after_down_for_s_of_real_time() -> None:
    sim = Sim()
    sim.engine.patch_config({"down": "5xx", "down_for_s": 5})
    assert rejection(sim.engine.admit).http_status == 503
    sim.engine.clock.advance(100)  # simulated time does not end an outage
    assert rejection(sim.engine.admit).http_status == 503
    sim.real_time.tick(5)
    sim.engine.admit()
    assert sim.engine.config.down is None


def test_a_later_outage_without_down_for_s_lasts_until_ended_not_the_last_ones_length() -> None:
    sim = Sim()
    sim.engine.patch_config({"down": "5xx", "down_for_s": 5})
    sim.real_time.tick(5)
    sim.engine.admit()  # the first outage ended by itself
    sim.engine.patch_config({"down": "5xx"})
    assert sim.engine.config.down_for_s is None
    sim.real_time.tick(60)
    assert rejection(sim.engine.admit).http_status == 503
    sim.engine.patch_config({"down": None})
    sim.engine.admit()


@pytest.mark.parametrize(
    ("knobs", "answer"),
    [({"lost_response_rate": 1}, "lost"), ({"slow_rate": 1}, "slow"), ({}, "sent")],
)
def test_lost_and_slow_answers_happen_after_the_effect(knobs: dict, answer: str) -> None:
    sim = Sim(**knobs)
    created = sim.engine.create(Kind.CLONE, sim.account, dict(CLONE))
    assert created.answer == answer
    assert created.task.id in sim.engine.tasks
    assert sim.balance < 1000
    assert sim.engine.ledger.creates[0].answer == answer


# --- ledger and reset ----------------------------------------------------------------------------


def test_ledger_records_polls_at_simulated_times_and_counts_duplicates() -> None:
    sim = Sim()
    task = sim.clone()
    sim.engine.create(Kind.CLONE, sim.account, {"fileUrl": CLONE["fileUrl"]})  # same body again
    sim.clone(contentText="different")
    start = sim.engine.clock.now()
    for _ in range(3):
        sim.engine.poll(sim.account, task.id)
        sim.engine.clock.advance(5)
    ledger = sim.engine.ledger_json()
    assert ledger["polls"][task.id] == [start, start + 5, start + 10]
    assert ledger["creates"][0]["body"] == CLONE
    summary = sim.engine.summary()
    assert summary["creates_total"] == 3
    assert summary["duplicate_creates"] == 1
    assert list(summary["duplicates"].values()) == [2]
    assert summary["polls_total"] == 3


def test_reset_restores_the_start() -> None:
    sim = Sim(latency_s=0.5)
    first = sim.clone().id
    sim.engine.patch_config({"latency_s": 2})
    sim.engine.clock.advance(100)
    sim.engine.accounts.set_balance(TOKEN, 1)
    sim.engine.reset()
    assert sim.engine.tasks == {}
    assert sim.engine.ledger.creates == []
    assert sim.engine.config.latency_s == 0.5
    assert sim.engine.clock.offset_s == 0
    assert sim.balance == 1000
    assert sim.clone().id == first  # the seeded streams start over too


def test_a_rate_limit_schedule_changes_the_limit_on_the_real_clock() -> None:
    """40/s -> 20/s -> 40/s as a provider under load does, timed from when it was set."""
    sim = Sim(rate_limit_per_s=3)
    sim.engine.patch_config({"rate_limit_schedule": [[10, 1], [20, 3]]})
    assert sim.engine.rate_limit_now() == 3
    sim.engine.clock.advance(3600)  # simulated time moves no rate limit
    assert sim.engine.rate_limit_now() == 3
    sim.real_time.tick(10)
    assert sim.engine.rate_limit_now() == 1
    sim.engine.admit()
    assert rejection(sim.engine.admit).http_status == 429
    sim.real_time.tick(10)
    assert sim.engine.rate_limit_now() == 3


def test_a_lowered_limit_counts_the_requests_already_admitted() -> None:
    sim = Sim(rate_limit_per_s=3)
    for _ in range(3):
        sim.engine.admit()
    sim.engine.patch_config({"rate_limit_per_s": 2})
    assert rejection(sim.engine.admit).http_status == 429  # 3 in the last second: over 2


def test_a_bad_rate_limit_schedule_is_refused() -> None:
    with pytest.raises(ConfigPatchError, match="ascending"):
        patched(SimConfig(), {"rate_limit_schedule": [[10, 5], [5, 5]]})


def test_arrival_jitter_is_seeded_and_bounded() -> None:
    delays = [Sim(latency_s=0.1, latency_jitter_s=0.05).engine.arrival_delay() for _ in range(2)]
    assert delays[0] == delays[1]  # same seed, same draw
    engine = Sim(latency_s=0.1, latency_jitter_s=0.05).engine
    draws = [engine.arrival_delay() for _ in range(200)]
    assert all(0.1 <= d <= 0.15 for d in draws)
    assert max(draws) - min(draws) > 0.03
    assert Sim(latency_s=0.1).engine.arrival_delay() == 0.1
