"""The job: read -> tokenize -> vectorize -> neighbours -> write. Returns a RunReport."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from related.config import Settings
from related.db import ResultRow, WriteReport, connect
from related.entries import Entries
from related.neighbours import Neighbours, top_k_neighbours
from related.progress import NoProgress, ProgressFactory
from related.tokenize import tokenize_entries
from related.vectorize import TfidfMatrix, build_tfidf

log = logging.getLogger("related")


@dataclass
class RunReport:
    database: str  # password masked
    results_table: str
    dry_run: bool
    entries: int = 0
    entries_without_terms: int = 0
    terms: int = 0
    nnz: int = 0
    pairs: int = 0
    write: WriteReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Related:
    """Everything computed for one set of entries, before anything is written."""

    tfidf: TfidfMatrix
    neighbours: Neighbours
    rows: list[ResultRow]


class _Timer:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def compute_related(
    entries: Entries,
    settings: Settings,
    *,
    progress: ProgressFactory = NoProgress,
    timer: _Timer | None = None,
) -> Related:
    """Tokenize, weight and find neighbours: the database-free middle of the job."""
    timer = timer or _Timer({})
    with timer.stage("tokenize"):
        bar = progress("tokenize", len(entries))
        term_counts = tokenize_entries(entries.items, settings.tokenizer, on_entry=bar.advance)
        bar.close()
    without_terms = [e.id for e, c in zip(entries.items, term_counts, strict=True) if not c]
    if without_terms:
        log.warning(
            "%d entr%s yielded no terms (empty, or only symbols, numbers or markup) and get "
            "no related entries: %s",
            len(without_terms),
            "y" if len(without_terms) == 1 else "ies",
            ", ".join(repr(i) for i in without_terms[:5])
            + (" ..." if len(without_terms) > 5 else ""),
        )
    with timer.stage("vectorize"):
        tfidf = build_tfidf(term_counts, settings.vectors)
    with timer.stage("neighbours"):
        bar = progress("neighbours", len(entries))
        neighbours = top_k_neighbours(
            tfidf.matrix,
            top_k=settings.neighbours.top_k,
            min_score=settings.neighbours.min_score,
            on_rows=bar.advance,
        )
        bar.close()
    ids = entries.ids
    rows = [
        ResultRow(ids[s], ids[t], float(score), int(rank))
        for s, t, score, rank in zip(
            neighbours.source.tolist(),
            neighbours.target.tolist(),
            neighbours.score.tolist(),
            neighbours.rank.tolist(),
            strict=True,
        )
    ]
    return Related(tfidf=tfidf, neighbours=neighbours, rows=rows)


def run_job(
    settings: Settings, *, dry_run: bool = False, progress: ProgressFactory = NoProgress
) -> RunReport:
    """Run the whole job against ``settings.database_url``.

    The results table is replaced in one transaction at the very end; any failure before or
    during that transaction leaves the previous results exactly as they were.
    """
    url = settings.require_database_url()
    seconds: dict[str, float] = {}
    timer = _Timer(seconds)
    started = time.perf_counter()
    with connect(url) as db:
        report = RunReport(
            database=db.display_url, results_table=settings.output.results_table, dry_run=dry_run
        )
        with timer.stage("read"):
            entries = db.read_entries(settings.source)
        log.info("read %d entries from %s", len(entries), db.display_url)
        related = compute_related(entries, settings, progress=progress, timer=timer)
        report.entries = len(entries)
        report.terms = len(related.tfidf.terms)
        report.nnz = related.tfidf.nnz
        report.pairs = len(related.rows)
        report.entries_without_terms = int((related.tfidf.matrix.getnnz(axis=1) == 0).sum())
        if not dry_run:
            with timer.stage("write"):
                report.write = db.write_results(
                    related.rows,
                    results_table=settings.output.results_table,
                    id_type=entries.id_type,
                )
    seconds["total"] = round(time.perf_counter() - started, 3)
    report.seconds = seconds
    return report
