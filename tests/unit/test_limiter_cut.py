"""How a cut moves the slots a process holds: pure math, no Redis."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from clonequeue.workers.limiter import Cut
from clonequeue.workers.rate_lua import CUT_KEEP_S

offsets = st.lists(st.floats(0.0, 3.0), min_size=1, max_size=40)


@given(
    offsets=offsets,
    factor=st.floats(1.0, 4.0),
    pause_s=st.sampled_from([0.0, 0.5, 1.0, 5.0]),
)
def test_kept_slots_keep_their_order_and_lie_before_the_timeline(
    offsets: list[float], factor: float, pause_s: float
) -> None:
    """Slots held after a cut keep their order and spacing (stretched), all lie where the
    timeline (rate_lua: COOL_DOWN) starts again or before, and the rest are given up."""
    cut = Cut(seq=1, at=100.0, factor=factor, pause_s=pause_s)
    held = sorted(cut.at + offset for offset in offsets)
    moved = [cut.move(slot) for slot in held]
    kept = [slot for slot in moved if cut.keeps(slot)]
    assert kept == moved[: len(kept)]  # the given-up ones are the latest
    assert all(slot <= cut.free_from() for slot in kept)
    assert all(slot > cut.at + CUT_KEEP_S for slot in moved[len(kept) :])
    for (a, b), (ma, mb) in zip(pairwise(held), pairwise(moved), strict=True):
        # No two closer than the new pace (to a nanosecond: times near 100 s carry
        # ~1e-14 s of float error, which a 1e-9 s spacing cannot hide).
        assert mb - ma >= (b - a) * factor - 1e-9
    if pause_s >= CUT_KEEP_S:
        assert all(slot <= cut.at for slot in kept)  # none moved into a long pause is held


def test_a_slot_before_the_cut_stays() -> None:
    cut = Cut(seq=1, at=10.0, factor=2.0, pause_s=1.0)
    assert cut.move(9.5) == 9.5
    assert cut.keeps(9.5)
