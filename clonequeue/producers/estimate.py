"""What a batch will bill, said the same way everywhere, and the ``--max-chars`` guard."""

from __future__ import annotations

from typing import Any

from clonequeue.api.billing import CostEstimate
from clonequeue.producers.errors import EstimateTooHighError
from clonequeue.wording import plural


def describe(estimate: CostEstimate) -> str:
    """``12,345 characters billed (345 preview + 12,000 production) in 30 submissions …``."""
    submissions = plural(estimate.clones + estimate.audios, "submission")
    return (
        f"{plural(estimate.total_chars, 'character')} billed ({estimate.preview_chars:,} "
        f"preview + {estimate.production_chars:,} production) in {submissions} "
        f"({plural(estimate.clones, 'clone')}, {plural(estimate.audios, 'production audio')})"
    )


def as_dict(estimate: CostEstimate) -> dict[str, Any]:
    return {
        "preview_chars": estimate.preview_chars,
        "production_chars": estimate.production_chars,
        "total_chars": estimate.total_chars,
        "clones": estimate.clones,
        "audios": estimate.audios,
        "submissions": estimate.clones + estimate.audios,
    }


def check_limit(estimate: CostEstimate, max_chars: int | None) -> None:
    """Refuse (before anything is sent) a batch that would bill more than ``max_chars``."""
    if max_chars is not None and estimate.total_chars > max_chars:
        raise EstimateTooHighError(
            f"the batch would bill {plural(estimate.total_chars, 'character')}, more than "
            f"--max-chars {max_chars:,}; nothing was submitted "
            "(split the input or raise the limit)",
            estimate_chars=estimate.total_chars,
            limit_chars=max_chars,
        )
