"""clonequeue: run JimmyAI SoundClone voice-cloning jobs in bulk, paying for each once.

The public Python API for pipelines::

    import clonequeue
    batch = clonequeue.submit(rows, batch="march")
    for record in clonequeue.results(batch):
        ...
"""

from clonequeue._version import __version__
from clonequeue.batch import Batch
from clonequeue.config import Settings, load_settings
from clonequeue.errors import (
    ApiError,
    ClonequeueError,
    ConfigError,
    InputError,
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
)

__all__ = [
    "ApiError",
    "Batch",
    "BatchNotFoundError",
    "ClonequeueError",
    "ConfigError",
    "EstimateTooHighError",
    "InputError",
    "JobSpec",
    "NothingSubmittedError",
    "OutcomeUnknownError",
    "ProducerError",
    "RejectedRowsWarning",
    "RowsRejectedError",
    "Settings",
    "StoreError",
    "__version__",
    "estimate",
    "load_settings",
    "results",
    "submit",
]
