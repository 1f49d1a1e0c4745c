"""Validate rows a chunk at a time, and turn repeats within one input into skips or errors.

Chunks keep the per-row work in tight loops and give the duplicate index and Redis
one round trip per chunk; nothing beyond the current chunk is held in memory. A
chunk holds plain values (the job document already as JSON), so it can be made
in a helper process (parallel.py) as well as in this one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clonequeue.api.billing import CostEstimate
from clonequeue.jobspec import JobSpec
from clonequeue.producers.dedupe import SeenIds
from clonequeue.producers.rows import Row, RowError, validate_row
from clonequeue.store.records import content_hash

CHUNK_ROWS = 500

BuildDoc = Callable[[JobSpec], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Checked:
    """A valid row, first of its custom_id in this input; ``doc`` (JSON) when to be recorded."""

    line: int
    custom_id: str
    h: str  # content hash: tells a harmless re-submission from a conflict
    cost: CostEstimate
    original: Any = None  # the row as read, for the errors file
    doc: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Plain tuples: unpickling slotted dataclasses field by field costs ~5 % of
        # the parent's time when chunks come from the helper process.
        cost = self.cost
        state = (cost.preview_chars, cost.production_chars, cost.clones, cost.audios)
        return (_checked, (self.line, self.custom_id, self.h, state, self.original, self.doc))


def _checked(
    line: int, custom_id: str, h: str, cost: tuple[int, int, int, int], original: Any, doc: Any
) -> Checked:
    return Checked(line, custom_id, h, CostEstimate(*cost), original, doc)


@dataclass
class Chunk:
    """What one chunk of input rows came to."""

    rows: int = 0
    checked: list[Checked] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    repeats: int = 0  # same custom_id and content as an earlier row: skipped


def check(row: Row, build_doc: BuildDoc | None) -> Checked | RowError:
    """Validate one row; with ``build_doc``, also make its job document."""
    spec = validate_row(row)
    if isinstance(spec, RowError):
        return spec
    if build_doc is None:
        return Checked(row.line, spec.custom_id, content_hash(spec), spec.cost(), row.original)
    doc = build_doc(spec)
    return Checked(
        row.line, spec.custom_id, doc["h"], doc_cost(doc), row.original,
        json.dumps(doc, ensure_ascii=False),
    )  # fmt: skip


def doc_cost(doc: dict[str, Any]) -> CostEstimate:
    """What a new job document will bill (its ``chars`` follow the billing rules)."""
    audios = doc.get("audios", ())
    return CostEstimate(
        preview_chars=doc["clone"]["chars"],
        production_chars=sum(a["chars"] for a in audios),
        clones=1,
        audios=len(audios),
    )


def chunks(
    rows: Iterable[Row],
    seen: SeenIds,
    *,
    build_doc: BuildDoc | None = None,
    size: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """Validated, de-duplicated chunks of ``rows``."""
    chunk = Chunk()
    for row in rows:
        chunk.rows += 1
        result = check(row, build_doc)
        if isinstance(result, RowError):
            chunk.errors.append(result)
        else:
            chunk.checked.append(result)
        if chunk.rows >= size:
            yield _dedupe(chunk, seen)
            chunk = Chunk()
    if chunk.rows:
        yield _dedupe(chunk, seen)


def _dedupe(chunk: Chunk, seen: SeenIds) -> Chunk:
    earlier = seen.check([(c.custom_id, c.h, c.line) for c in chunk.checked])
    kept = []
    for checked, before in zip(chunk.checked, earlier, strict=True):
        if before is None:
            kept.append(checked)
        elif before.same_content:
            chunk.repeats += 1
        else:
            chunk.errors.append(
                RowError(
                    checked.line,
                    checked.custom_id,
                    [
                        f"custom_id: already used by line {before.line} with different "
                        "content; give each job its own custom_id"
                    ],
                    checked.original,
                )
            )
    chunk.checked = kept
    return chunk
