"""What the store reads and writes: plain records shared by the store, the pipeline and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from related.config import OutputSettings
from related.entries import EntryId

log = logging.getLogger("related")


@dataclass(frozen=True)
class WriteReport:
    """What a write changed in the results table."""

    table: str
    inserted: int
    updated: int
    deleted: int
    total: int  # rows in the table after the write


@dataclass(frozen=True)
class ResultsLayout:
    """The results table's name and columns: ours, or Lokka's ``similarities``."""

    table: str
    related_column: str = "related_entry_id"
    has_rank: bool = True

    @classmethod
    def from_settings(cls, output: OutputSettings) -> ResultsLayout:
        if output.results_layout == "lokka":
            return cls(output.results_table, related_column="similar_entry_id", has_rank=False)
        return cls(output.results_table)

    @property
    def columns(self) -> tuple[str, ...]:
        return ("entry_id", self.related_column, "score") + (("rank",) if self.has_rank else ())


@dataclass(frozen=True)
class RunRecord:
    """One row of the run log (the runs table)."""

    run_id: int
    results_table: str
    started_at: datetime | str
    finished_at: datetime | str | None
    status: str
    entries: int | None = None
    pairs: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    rows_total: int | None = None
    settings_fingerprint: str | None = None
    input_fingerprint: str | None = None
    version: str | None = None
    message: str | None = None


RUN_COLUMNS = tuple(RunRecord.__dataclass_fields__)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ends, recorded in the run log (with the write, in its transaction)."""

    runs_table: str
    run_id: int
    status: str
    entries: int | None = None
    pairs: int | None = None
    input_fingerprint: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class CachedTokens:
    """The token cache as read from the database (see related/token_cache.py): every row, and
    the term of every term id."""

    terms: tuple[str, ...]  # term id -> term
    rows: dict[bytes, tuple[bytes, bytes]]  # key -> (term ids blob, counts blob)

    @classmethod
    def empty(cls) -> CachedTokens:
        return cls(terms=(), rows={})


@dataclass(frozen=True)
class TokenCacheUpdate:
    """What to write back: new terms and rows, rows no current entry uses, or, with
    ``rewrite``, a complete new cache that replaces the old one."""

    new_terms: list[tuple[int, str]]  # (term id, term)
    new_rows: list[tuple[bytes, bytes, bytes]]  # (key, term ids blob, counts blob)
    stale_keys: list[bytes]
    rewrite: bool = False

    @property
    def empty(self) -> bool:
        return not (self.new_terms or self.new_rows or self.stale_keys or self.rewrite)


def cached_tokens(
    terms: Sequence[tuple[int, str]], rows: dict[bytes, tuple[bytes, bytes]]
) -> CachedTokens:
    """CachedTokens from (term_id, term) rows ordered by id. Ids that are not exactly 0..n-1
    mean the cache was edited or half-copied: it is then treated as empty and rewritten."""
    if any(term_id != i for i, (term_id, _) in enumerate(terms)):
        log.warning("the token cache's term ids are not contiguous; rebuilding the cache")
        return CachedTokens.empty()
    return CachedTokens(terms=tuple(term for _, term in terms), rows=rows)


class ResultRow(NamedTuple):
    """One related pair as written. A tuple: a run makes a million of them at 100k entries,
    where a frozen dataclass cost ~1 s more to build."""

    entry_id: EntryId
    related_entry_id: EntryId
    score: float
    rank: int


@dataclass(frozen=True)
class StoredNeighbour:
    related_entry_id: EntryId
    title: str | None
    score: float
    rank: int
