"""The order a worker fetches its queues in on a Redis broker: audio creates weigh double.

kombu's Redis transport asks for one message from all of a worker's lists at once
(``BRPOP``, which answers from the first non-empty list it names) and then moves the
list that answered to the end of its order: round robin, so a list with work waiting
gets one fetch in as many as there are lists with work waiting. While the rate limit
binds, that split decides when the batch's last creates go out. With the audio
creates (``<ns>.produce``) and the polls splitting the calls half and half, the last
audios were created as late as the batch's last 8 s (issue 15's bench): their tasks
then ran while the API sat idle, as nothing else was left to call it for.

Here the produce list keeps its place for :data:`PRODUCE_WEIGHT` fetches in a row
before it moves to the end: audio creates get two fetches to a poll's one while both
wait, so they run out sooner, and the polls they leave (one per task) keep the API
busy while the last tasks run. Polls still get a third of the fetches: results keep
landing through a long batch. New clones (``<ns>.submit``) keep their plain turn: an
audio create finishes a job already started, a clone starts another.

Installed as kombu's ``queue_order_strategy`` (an import path is accepted there), so
no kombu code is patched. RabbitMQ delivers to each queue's consumer on its own and
has no such order.
"""

from __future__ import annotations

from typing import Any

from kombu.utils.scheduling import round_robin_cycle

from clonequeue.dispatch.queues import QueueNames

PRODUCE_SUFFIX = QueueNames.for_namespace("").produce  # ".produce", as queues.py names it
PRODUCE_WEIGHT = 2  # fetches in a row the produce list keeps its place for

STRATEGY = f"{__name__}:WeightedCycle"  # the transport option's value


class WeightedCycle(round_robin_cycle):
    """Round robin, except that the produce list moves to the end only after
    :data:`PRODUCE_WEIGHT` fetches in a row."""

    def __init__(self, it: Any = None) -> None:
        super().__init__(it)  # type: ignore[no-untyped-call]
        self._winner: Any = None
        self._wins = 0

    def rotate(self, last_used: Any) -> Any:
        self._wins = self._wins + 1 if last_used == self._winner else 1
        self._winner = last_used
        weight = PRODUCE_WEIGHT if str(last_used).endswith(PRODUCE_SUFFIX) else 1
        if self._wins < weight:
            return last_used  # keeps its place: the next fetch asks it first again
        self._winner, self._wins = None, 0
        return super().rotate(last_used)  # type: ignore[no-untyped-call]
