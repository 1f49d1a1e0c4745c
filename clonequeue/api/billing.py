"""Characters the provider bills, so a batch's cost is known before it is sent.

Billing rules (../shared/jimmyai-api.md): priced per 10,000 characters counted as
Unicode code points, pause markers excluded; a clone without contentText bills the
default preview line; each production audio also pays a voice fee per submission.
"""

from __future__ import annotations

from dataclasses import dataclass

from clonequeue.api.rules import strip_pause_markers
from clonequeue.constants import DEFAULT_PREVIEW_TEXT


def billed_chars(text: str) -> int:
    """Code points the provider bills for ``text``: pause markers do not count."""
    return len(strip_pause_markers(text))


def preview_chars(content_text: str | None) -> int:
    """Billed characters of a clone's preview; the default line when none is given."""
    return billed_chars(DEFAULT_PREVIEW_TEXT if content_text is None else content_text)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a set of jobs will bill: characters and the number of create calls."""

    preview_chars: int = 0
    production_chars: int = 0
    clones: int = 0
    audios: int = 0

    @property
    def total_chars(self) -> int:
        return self.preview_chars + self.production_chars

    def __add__(self, other: CostEstimate) -> CostEstimate:
        return CostEstimate(
            self.preview_chars + other.preview_chars,
            self.production_chars + other.production_chars,
            self.clones + other.clones,
            self.audios + other.audios,
        )
