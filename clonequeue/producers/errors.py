"""Why a submission as a whole cannot go ahead (a bad *row* is a RowError, never these).

::

    ClonequeueError
    └── ProducerError             nothing (more) is submitted; the message says what to do
        ├── UnreadableInputError  the input cannot be opened or read to the end
        ├── EstimateTooHighError  the batch would bill more characters than --max-chars
        ├── NothingSubmittedError no row was accepted: the input is empty, or every row bad
        │   └── RowsRejectedError rows were rejected and nothing was sent (or strict=True)
        └── BatchNotFoundError    no such batch in Redis (never made, purged or expired)

``RejectedRowsWarning`` is what the Python API warns with when some rows were
rejected and the others went ahead.

The CLI prints the message on one line and exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clonequeue.errors import ClonequeueError

if TYPE_CHECKING:
    from clonequeue.producers.rows import RowError


class ProducerError(ClonequeueError):
    """A submission or batch operation cannot go ahead."""


class UnreadableInputError(ProducerError):
    """The input file cannot be opened, or reading it failed part-way."""


class EstimateTooHighError(ProducerError):
    """The batch's estimate exceeds the caller's character limit; nothing was submitted."""

    def __init__(self, message: str, *, estimate_chars: int, limit_chars: int) -> None:
        self.estimate_chars = estimate_chars
        self.limit_chars = limit_chars
        super().__init__(message)


class BatchNotFoundError(ProducerError, LookupError):
    """No batch of that id in Redis.

    ``reason``, when known (the submission that returned the ``Batch`` never created
    it: a dry run, or every row already in other batches), replaces the general advice
    about expiry and purges, which would send the caller looking in the wrong place.
    """

    def __init__(self, batch_id: str, *, reason: str | None = None) -> None:
        self.batch_id = batch_id
        self.reason = reason
        if reason is not None:
            super().__init__(f"no batch {batch_id!r}: {reason}")
            return
        super().__init__(
            f"no batch {batch_id!r} (see `clonequeue batches`; records expire "
            "CLONEQUEUE_RETENTION_S after a batch finishes, and `purge` removes them; "
            "check that CLONEQUEUE_REDIS_URL and CLONEQUEUE_NAMESPACE are those it was "
            "submitted with, and that this Redis keeps its data: one without persistence "
            "loses every batch when it restarts)"
        )


class NothingSubmittedError(ProducerError):
    """No row of the input was accepted, so no batch was made (the CLI's exit 1)."""


class RowsRejectedError(NothingSubmittedError, ValueError):
    """Rows were rejected and nothing was submitted; ``rejected`` holds the first of them."""

    def __init__(self, message: str, *, rejected: list[RowError], count: int) -> None:
        self.rejected = rejected
        self.count = count
        super().__init__(message)


class RejectedRowsWarning(UserWarning):
    """Some rows were rejected (see ``batch.rejected``); the others were submitted."""
