"""The job: read -> tokenize -> vectorize -> neighbours -> write. Returns a RunReport."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from related import __version__
from related.config import AUTO_PRUNED_FROM, Settings
from related.db import (
    CachedTokens,
    Database,
    ResultRow,
    ResultsLayout,
    RunOutcome,
    RunRecord,
    TokenCacheUpdate,
    WriteReport,
    connect,
    scrub,
)
from related.diff import ResultsDiff, diff_results
from related.entries import Entries, Entry, EntryId
from related.errors import DatabaseError
from related.fingerprint import input_fingerprint, settings_fingerprint
from related.memory import return_free_memory
from related.progress import NoProgress, ProgressFactory

if TYPE_CHECKING:
    from related.neighbours import Neighbours
    from related.vectorize import TfidfMatrix

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
    neighbour_mode: str = ""  # as resolved for this run (auto -> exact or pruned)
    workers: int = 0
    cache_hits: int = 0  # entries whose terms came from the token cache, not from MeCab
    write: WriteReport | None = None
    diff: ResultsDiff | None = None  # dry runs: what the write would change
    run_id: int | None = None  # the row in the run log (not for dry runs)
    skipped: str | None = None  # why nothing was done, when nothing changed
    settings_fingerprint: str = ""
    input_fingerprint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Related:
    """Everything computed for one set of entries, before anything is written."""

    tfidf: TfidfMatrix
    neighbours: Neighbours
    rows: list[ResultRow]
    neighbour_mode: str  # as resolved: "exact" or "pruned"
    cache_hits: int = 0  # entries whose terms came from the token cache


class _Timer:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        log.info("%s ...", name)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
        log.info("%s done in %.2f s", name, self.seconds[name])


@dataclass(frozen=True)
class TermCounts:
    """What the later stages need from the entries, without their text: each entry's weighted
    term counts (rows in entry order, columns = ``terms``, sorted), ids, and its title's own
    counts (same columns) when title_share needs them."""

    matrix: Any  # scipy.sparse.csr_matrix; Any so this module imports without scipy
    terms: list[str]
    ids: list[EntryId]
    title_matrix: Any = None  # only when title_share is set
    cache_hits: int = 0  # entries whose counts came from the token cache
    cache_update: TokenCacheUpdate | None = None  # None: the cache was not used


def count_terms(
    entries: Entries,
    settings: Settings,
    *,
    cached: CachedTokens | None = None,
    progress: ProgressFactory = NoProgress,
    timer: _Timer | None = None,
) -> TermCounts:
    """Tokenize: entries in, counts out. With ``cached`` (the token cache as read), only
    entries missing from it are tokenised; the counts are the same either way.

    With title_share, each title is also counted alone, as one more document (an entry with
    only a body, the title): same workers, same cache, same columns.
    """
    return _count_handed_over(
        [entries], settings, cached=cached, release=False, progress=progress, timer=timer
    )


def _count_handed_over(
    handed_over: list[Entries],
    settings: Settings,
    *,
    cached: CachedTokens | None,
    release: bool,
    progress: ProgressFactory,
    timer: _Timer | None,
) -> TermCounts:
    """count_terms for entries passed in a one-item list that this function empties: with
    ``release``, the caller holds no other reference, so each entry's text is freed as soon as
    the tokeniser has taken it (see count_entries_cached)."""
    # Imported here, not at the top: numpy, scipy and MeCab cost ~0.3 s to import, and a run
    # that is skipped because nothing changed never needs them.
    from related.token_cache import count_entries_cached

    timer = timer or _Timer({})
    entries = handed_over.pop()
    n, ids = len(entries), entries.ids
    documents: list[Entry | None] = list(entries.items)
    hashes: tuple[bytes, ...] = entries.content_hashes
    if settings.vectors.title_share:
        titles = tuple(Entry(entry.id, "", entry.title) for entry in entries.items)
        documents.extend(titles)
        hashes += tuple(title.content_hash() for title in titles)
        del titles
    del entries  # from here on `documents` holds the only references to the entries
    n_documents = len(documents)
    hits, update = 0, None
    with timer.stage("tokenize"), progress("tokenize", n) as bar:
        # Without the token cache too: the same counting, from an empty cache that is never
        # written, so the text is released the same way.
        found = count_entries_cached(
            documents,
            settings.tokenizer,
            cached if cached is not None else CachedTokens.empty(),
            content_hashes=hashes,
            release=release,
            want_update=cached is not None,
            workers=settings.run.workers,
            on_entries=_entries_done(bar.advance, n),
        )
        matrix, terms = found.matrix, found.terms
        if cached is not None:
            update = found.update
            hits = n - sum(1 for row in found.tokenised if row < n)  # entries, not titles
            log.info("token cache: %d entries cached, %d tokenised", hits, n - hits)
    counts = TermCounts(
        matrix=row_range(matrix, 0, n),
        terms=terms,
        ids=ids,
        title_matrix=row_range(matrix, n, n_documents) if n_documents > n else None,
        cache_hits=hits,
        cache_update=update,
    )
    empty_rows = (counts.matrix.getnnz(axis=1) == 0).nonzero()[0].tolist()
    if empty_rows:
        log.warning(
            "%d entr%s yielded no terms (empty, or only symbols, numbers or markup) and get "
            "no related entries: %s",
            len(empty_rows),
            "y" if len(empty_rows) == 1 else "ies",
            ", ".join(repr(ids[i]) for i in empty_rows[:5])
            + (" ..." if len(empty_rows) > 5 else ""),
        )
    return counts


def _entries_done(advance: Callable[[int], None], n_entries: int) -> Callable[[int], None]:
    """Progress in entries, not documents: with title_share each entry is two documents, its
    text and then its title alone, and the bar counts the entries a user has. Titles come
    last and take a small part of the time, so the bar follows the texts and stops at
    ``n_entries`` (counting documents, it crawled to 50% and then raced to the end)."""
    done = 0

    def documents_done(count: int) -> None:
        nonlocal done
        before, done = done, done + count
        if moved := min(done, n_entries) - min(before, n_entries):
            advance(moved)

    return documents_done


def row_range(matrix: Any, start: int, stop: int) -> Any:
    """Rows start..stop of a CSR matrix sharing its arrays (``matrix[start:stop]`` copies
    them: at 100k entries 0.23 GB at the run's memory peak)."""
    import scipy.sparse as sp

    if (start, stop) == (0, matrix.shape[0]):
        return matrix
    first, last = matrix.indptr[start], matrix.indptr[stop]
    return sp.csr_matrix(
        (
            matrix.data[first:last],
            matrix.indices[first:last],
            matrix.indptr[start : stop + 1] - first,
        ),
        shape=(stop - start, matrix.shape[1]),
        copy=False,
    )


def weigh_terms(
    counts: TermCounts, settings: Settings, *, timer: _Timer | None = None
) -> TfidfMatrix:
    """TF-IDF weighting (plus the title vector when title_share is set)."""
    from related.vectorize import add_field_vectors, tfidf_from_counts

    timer = timer or _Timer({})
    with timer.stage("vectorize"):
        tfidf = tfidf_from_counts(counts.matrix, counts.terms, settings.vectors)
        if counts.title_matrix is not None:  # counted only when title_share is set
            tfidf = add_field_vectors(
                tfidf,
                counts.title_matrix,
                counts.terms,
                share=settings.vectors.title_share,
                sublinear_tf=settings.vectors.sublinear_tf,
            )
        return tfidf


def vectorize_entries(
    entries: Entries,
    settings: Settings,
    *,
    cached: CachedTokens | None = None,
    progress: ProgressFactory = NoProgress,
    timer: _Timer | None = None,
) -> TfidfMatrix:
    """Tokenize and weight: entries in, the L2-normalised TF-IDF matrix out.

    The one place vectors are built, so `related run`, `related explain` and `related eval`
    always agree on a score.
    """
    counts = count_terms(entries, settings, cached=cached, progress=progress, timer=timer)
    return weigh_terms(counts, settings, timer=timer)


def resolved_neighbour_mode(settings: Settings, n_entries: int) -> str:
    mode = settings.neighbours.neighbour_mode
    if mode == "auto":
        return "pruned" if n_entries >= AUTO_PRUNED_FROM else "exact"
    return mode


def compute_related(
    entries: Entries,
    settings: Settings,
    *,
    cached: CachedTokens | None = None,
    progress: ProgressFactory = NoProgress,
    timer: _Timer | None = None,
) -> Related:
    """Tokenize, weight and find neighbours: the database-free middle of the job."""
    counts = count_terms(entries, settings, cached=cached, progress=progress, timer=timer)
    tfidf = weigh_terms(counts, settings, timer=timer)
    return find_related(
        tfidf, counts.ids, settings, cache_hits=counts.cache_hits, progress=progress, timer=timer
    )


def find_related(
    tfidf: TfidfMatrix,
    ids: list[EntryId],
    settings: Settings,
    *,
    cache_hits: int = 0,
    progress: ProgressFactory = NoProgress,
    timer: _Timer | None = None,
) -> Related:
    """Each entry's top-k neighbours as result rows (``ids`` in matrix row order)."""
    from related.neighbours import top_k_neighbours

    timer = timer or _Timer({})
    mode = resolved_neighbour_mode(settings, len(ids))
    with timer.stage("neighbours"), progress("neighbours", len(ids)) as bar:
        neighbours = top_k_neighbours(
            tfidf.matrix,
            top_k=settings.neighbours.top_k,
            min_score=settings.neighbours.min_score,
            on_rows=bar.advance,
            mode=mode,
            workers=settings.run.workers,
        )
    id_of = ids.__getitem__
    rows = list(
        map(
            ResultRow,
            map(id_of, neighbours.source.tolist()),
            map(id_of, neighbours.target.tolist()),
            neighbours.score.tolist(),
            neighbours.rank.tolist(),
        )
    )
    return Related(
        tfidf=tfidf,
        neighbours=neighbours,
        rows=rows,
        neighbour_mode=mode,
        cache_hits=cache_hits,
    )


def run_job(
    settings: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    progress: ProgressFactory = NoProgress,
) -> RunReport:
    """Run the whole job against ``settings.database_url``.

    Takes the run lock for the results table (LockedError, exit 3, if another run holds it),
    logs the run in ``runs_table``, skips the work when neither the entries nor the settings
    changed since the last successful run (unless ``force``), and replaces the results in one
    transaction at the very end; any failure before or during it leaves the previous results
    exactly as they were. ``dry_run`` computes everything and reports what would change, but
    takes no lock and writes nothing, not even to the run log.
    """
    url = settings.require_database_url()
    seconds: dict[str, float] = {}
    timer = _Timer(seconds)
    started = time.perf_counter()
    layout = ResultsLayout.from_settings(settings.output)
    with connect(url, settings.run) as db:
        report = RunReport(database=db.display_url, results_table=layout.table, dry_run=dry_run)
        report.settings_fingerprint = settings_fingerprint(settings)
        if dry_run:
            # Checks only: a dry run creates nothing, not even the run log.
            db.prepare(settings.output, token_cache=settings.run.token_cache, create=False)
            related = _read_and_compute(db, settings, report, timer, progress)
            with timer.stage("diff"):
                report.diff = diff_results(db.read_results(layout) or [], related.rows)
        else:
            with db.run_lock(layout.table, settings.run):
                # The job's tables, made or checked before anything is read or tokenised.
                db.prepare(settings.output, token_cache=settings.run.token_cache, create=True)
                _locked_run(db, settings, report, timer, progress, force=force)
    seconds["total"] = round(time.perf_counter() - started, 3)
    report.seconds = seconds
    return report


def _read_and_compute(
    db: Database, settings: Settings, report: RunReport, timer: _Timer, progress: ProgressFactory
) -> Related:
    entries = _read(db, settings, report, timer)
    cached = read_token_cache(db, settings, timer)
    related = compute_related(entries, settings, cached=cached, progress=progress, timer=timer)
    _report_related(report, related, settings)
    return related


def _read(db: Database, settings: Settings, report: RunReport, timer: _Timer) -> Entries:
    with timer.stage("read"):
        entries = db.read_entries(settings.source)
    log.info("read %d entries from %s", len(entries), db.display_url)
    report.entries = len(entries)
    report.input_fingerprint = input_fingerprint(entries)
    return entries


def _report_related(report: RunReport, related: Related, settings: Settings) -> None:
    report.cache_hits = related.cache_hits
    report.terms = len(related.tfidf.terms)
    report.nnz = related.tfidf.nnz
    report.pairs = len(related.rows)
    report.neighbour_mode = related.neighbour_mode
    report.workers = settings.run.workers
    report.entries_without_terms = int((related.tfidf.matrix.getnnz(axis=1) == 0).sum())


def _locked_run(
    db: Database,
    settings: Settings,
    report: RunReport,
    timer: _Timer,
    progress: ProgressFactory,
    *,
    force: bool,
) -> None:
    layout = ResultsLayout.from_settings(settings.output)
    runs_table = settings.output.runs_table
    report.run_id = db.start_run(
        runs_table,
        RunRecord(
            run_id=0,
            results_table=layout.table,
            started_at=datetime.now(UTC),
            finished_at=None,
            status="running",
            settings_fingerprint=report.settings_fingerprint,
            version=__version__,
        ),
    )

    def outcome(status: str, message: str | None = None) -> RunOutcome:
        return RunOutcome(
            runs_table=runs_table,
            run_id=report.run_id,
            status=status,
            entries=report.entries,
            pairs=report.pairs,
            input_fingerprint=report.input_fingerprint or None,
            message=message,
        )

    try:
        entries = _read(db, settings, report, timer)
        # The results table's id columns take the source's id type: made or checked now, not
        # after minutes of work (and never inside the publishing transaction).
        db.ensure_results_table(layout, entries.id_type)
        last = db.last_successful_run(runs_table, layout.table)
        if not force and last is not None and _unchanged(db, layout, report, last):
            report.skipped = f"nothing changed since run {last.run_id} ({last.finished_at})"
            report.pairs = last.pairs or 0
            db.finish_run(outcome("skipped", report.skipped))
            log.info("%s; use --force to run anyway", report.skipped)
            return
        id_type = entries.id_type
        cached = read_token_cache(db, settings, timer)
        # Handed over: the tokenising stage frees each entry's text once it has taken it, and
        # no later stage needs the text (most of the run's memory at that point).
        handed_over = [entries]
        del entries
        counts = _count_handed_over(
            handed_over, settings, cached=cached, release=True, progress=progress, timer=timer
        )
        del cached
        return_free_memory()
        # Written now, not after the results: it frees its memory before the neighbour search,
        # and a run that fails later still leaves the next one less to tokenise. Its rows are
        # keyed by content, so they are right whatever happens to this run.
        _write_token_cache(db, settings, counts.cache_update, timer)
        tfidf = weigh_terms(counts, settings, timer=timer)
        ids, cache_hits = counts.ids, counts.cache_hits
        del counts  # the raw counts and the cache's rows, before the search's peak
        related = find_related(
            tfidf, ids, settings, cache_hits=cache_hits, progress=progress, timer=timer
        )
        _report_related(report, related, settings)
        with timer.stage("write"):
            report.write = db.write_results(
                related.rows, layout=layout, id_type=id_type, outcome=outcome("success")
            )
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        with contextlib.suppress(Exception):  # the connection itself may be what failed
            if isinstance(exc, KeyboardInterrupt):
                db.recover()
            db.finish_run(outcome(status, scrub(str(exc) or type(exc).__name__, db.url)))
        raise


def read_token_cache(
    db: Database, settings: Settings, timer: _Timer | None = None
) -> CachedTokens | None:
    """The token cache, empty on the first run; None when switched off. A cache that cannot
    be read (no SELECT privilege, say) costs speed, not the run: it is reported and skipped."""
    if not settings.run.token_cache:
        return None
    table = settings.output.token_cache_table
    with (timer or _Timer({})).stage("cache_read"):
        try:
            return db.read_token_cache(table) or CachedTokens.empty()
        except DatabaseError as exc:
            log.warning("%s Tokenising every entry; set token_cache = false to skip it.", exc)
            return CachedTokens.empty()


def _write_token_cache(
    db: Database, settings: Settings, update: TokenCacheUpdate | None, timer: _Timer
) -> None:
    """A cache that cannot be written only slows the next run down: a warning, not a
    failed run."""
    if update is None or update.empty:
        return
    table = settings.output.token_cache_table
    with timer.stage("cache_write"):
        try:
            db.write_token_cache(table, update)
        except DatabaseError as exc:
            log.warning(
                "%s The run goes on; the next one tokenises these entries again. "
                "Grant the job CREATE (or create the tables, see examples/least-privilege.sql) "
                "or set token_cache = false.",
                exc,
            )


def _unchanged(db: Database, layout: ResultsLayout, report: RunReport, last: RunRecord) -> bool:
    """Same settings, same entries, and the results table still holds what that run wrote."""
    return (
        last.settings_fingerprint == report.settings_fingerprint
        and last.input_fingerprint == report.input_fingerprint
        and db.count_results(layout) == last.rows_total
    )
