"""clonequeue: run JimmyAI SoundClone voice-cloning jobs in bulk, paying for each once.

The public Python API for pipelines::

    import clonequeue
    batch = clonequeue.submit(rows, batch="march")
    for record in clonequeue.results(batch):
        ...
"""

from clonequeue._version import __version__
from clonequeue.api.billing import CostEstimate
from clonequeue.batch import Batch, BatchStatus, RetryOutcome
from clonequeue.config import Settings, load_settings
from clonequeue.errors import (
    ApiError,
    ClonequeueError,
    ConfigError,
    InputError,
    MissingExtraError,
    OutcomeUnknownError,
    StoreError,
)
from clonequeue.jobspec import JobSpec
from clonequeue.producers.api import estimate, results, submit
from clonequeue.producers.errors import (
    BatchNotFoundError,
    EstimateTooHighError,
    NothingSubmittedError,
    ProducerError,
    RejectedRowsWarning,
    RowsRejectedError,
    UnreadableInputError,
)
from clonequeue.producers.rows import RowError
from clonequeue.producers.submission import SubmitReport

# The types a pipeline names in its own hints (what submit, status, retry, estimate and
# on_error hand it) are here too, so `mypy --strict` on its code needs no inner paths.
__all__ = [
    "ApiError",
    "Batch",
    "BatchNotFoundError",
    "BatchStatus",
    "ClonequeueError",
    "ConfigError",
    "CostEstimate",
    "EstimateTooHighError",
    "InputError",
    "JobSpec",
    "MissingExtraError",
    "NothingSubmittedError",
    "OutcomeUnknownError",
    "ProducerError",
    "RejectedRowsWarning",
    "RetryOutcome",
    "RowError",
    "RowsRejectedError",
    "Settings",
    "StoreError",
    "SubmitReport",
    "UnreadableInputError",
    "__version__",
    "estimate",
    "load_settings",
    "results",
    "submit",
]
