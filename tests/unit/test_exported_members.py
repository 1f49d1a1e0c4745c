"""The public API is what ``clonequeue.__all__`` says; changing it is a decision."""

from __future__ import annotations

import clonequeue


def test_exported_members() -> None:
    assert sorted(clonequeue.__all__) == [
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
    for name in clonequeue.__all__:
        assert hasattr(clonequeue, name), name
    assert all(
        issubclass(getattr(clonequeue, n), clonequeue.ClonequeueError)
        for n in (
            "ApiError",
            "ConfigError",
            "InputError",
            "StoreError",
            "ProducerError",
            "BatchNotFoundError",
            "EstimateTooHighError",
            "OutcomeUnknownError",
            "NothingSubmittedError",
            "RowsRejectedError",
        )
    )
