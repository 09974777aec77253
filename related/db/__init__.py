"""Databases: the only package that imports sqlite3 or psycopg.

``connect(url)`` picks the backend from the URL's scheme (SQLAlchemy/Django convention):

    sqlite:///blog.db            relative to the working directory
    sqlite:////var/data/blog.db  absolute
    postgresql://user:pw@host:5432/db?sslmode=require   any libpq URL (postgres:// too)
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from related.config import OutputSettings, RunSettings, SourceSettings
from related.entries import Entries, EntryId
from related.errors import ConfigError, RelatedError, SourceError
from related.presets import preset_query

log = logging.getLogger("related")


class LockedError(RelatedError):
    """Another run holds the lock for this results table."""

    exit_code = 3


_PASSWORD_IN_NETLOC = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*):([^@/?#]*)@")
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and error messages."""
    masked = _PASSWORD_IN_NETLOC.sub(r"\1:***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", masked)


def url_secrets(url: str) -> list[str]:
    """The password(s) in a URL, to scrub from driver error messages."""
    found = [m.group(2) for m in [_PASSWORD_IN_NETLOC.match(url)] if m and m.group(2)]
    found += [m.group(0).split("=", 1)[1] for m in _PASSWORD_IN_QUERY.finditer(url)]
    return [s for s in found if s]


def token_terms_table(table: str) -> str:
    """The token cache's second table: term id -> term."""
    return f"{table}_terms"


def scrub(message: str, url: str) -> str:
    for secret in url_secrets(url):
        message = message.replace(secret, "***")
    return message


def sqlite_path(url: str) -> Path:
    """sqlite:///relative.db -> relative.db; sqlite:////abs.db -> /abs.db."""
    rest = url[len("sqlite:///") :].split("?", 1)[0]
    if not url.startswith("sqlite:///") or not rest:
        raise ConfigError(
            f"Bad SQLite URL {mask_url(url)!r}. Use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db."
        )
    return Path(rest)


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


class Database(ABC):
    """One connection to the blog's database. Use as a context manager."""

    url: str

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    dialect: str

    def source_query(self, source: SourceSettings) -> str | None:
        """The SQL to read entries with, when not reading a plain table."""
        if source.preset:
            return preset_query(source.preset, self.dialect)
        return source.source_query

    @abstractmethod
    def read_entries(self, source: SourceSettings) -> Entries: ...

    @abstractmethod
    def read_results(self, layout: ResultsLayout) -> list[ResultRow] | None:
        """Every stored result row (None if the table does not exist yet)."""

    @abstractmethod
    def write_results(
        self,
        rows: Sequence[ResultRow],
        *,
        layout: ResultsLayout,
        id_type: str,
        outcome: RunOutcome | None = None,
    ) -> WriteReport:
        """Replace the whole results table with ``rows`` in ONE transaction.

        ``outcome`` is recorded in the run log inside the same transaction, so the log never
        claims a success whose results were not committed.
        """

    @abstractmethod
    def read_neighbours(
        self, entry_id: str, *, layout: ResultsLayout, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        """The stored neighbours of one entry (id given as text) and the entry's title."""

    @abstractmethod
    def run_lock(self, results_table: str, run: RunSettings) -> AbstractContextManager[None]:
        """Hold the one-run-at-a-time lock for ``results_table``; LockedError if busy."""

    @abstractmethod
    def start_run(self, runs_table: str, record: RunRecord) -> int:
        """Insert a 'running' row (creating the run log if needed); return its run_id.

        Called with the run lock held, so older 'running' rows of the same results table
        belong to runs that died (killed, connection lost): they are marked 'interrupted'.
        """

    @abstractmethod
    def finish_run(self, outcome: RunOutcome, write: WriteReport | None = None) -> None: ...

    @abstractmethod
    def list_runs(
        self, runs_table: str, *, limit: int = 20, results_table: str | None = None
    ) -> list[RunRecord]:
        """Most recent first; [] if the run log does not exist yet."""

    def last_successful_run(self, runs_table: str, results_table: str) -> RunRecord | None:
        for record in self.list_runs(runs_table, limit=50, results_table=results_table):
            if record.status == "success":
                return record
        return None

    @abstractmethod
    def count_results(self, layout: ResultsLayout) -> int | None: ...

    @abstractmethod
    def read_token_cache(self, table: str) -> CachedTokens | None:
        """The token cache kept in ``table`` and ``token_terms_table(table)``; None if it does
        not exist yet. A cache whose term ids are not 0..n-1 is returned empty (rebuilt)."""

    @abstractmethod
    def write_token_cache(self, table: str, update: TokenCacheUpdate) -> None:
        """Apply ``update`` in one transaction, creating the two tables when missing."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(url: str, run: RunSettings | None = None) -> Database:
    run = run or RunSettings()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from related.db.sqlite import SQLiteDatabase

        return SQLiteDatabase(url, run=run)
    if scheme in ("postgresql", "postgres"):
        from related.db.postgres import PostgresDatabase

        return PostgresDatabase(url, run=run)
    raise ConfigError(
        f"Unsupported database URL scheme {scheme or '(none)'!r} in {mask_url(url)!r}. "
        "Use sqlite:///path.db or postgresql://user@host/dbname."
    )


def entry_select_columns(source: SourceSettings) -> list[tuple[str, str]]:
    """(configured column, canonical name) pairs to read in table mode."""
    pairs = [
        (source.id_column, "id"),
        (source.title_column, "title"),
        (source.body_column, "body"),
    ]
    for setting, canonical in (
        (source.tags_column, "tags"),
        (source.category_column, "category"),
        (source.updated_at_column, "updated_at"),
    ):
        if setting:
            pairs.append((setting, canonical))
    return pairs


def check_source_columns(
    available: Sequence[str], source: SourceSettings, table_label: str
) -> None:
    """Raise SourceError naming the first configured column the table lacks."""
    present = {c.lower() for c in available}
    settings = {
        "id": "id_column",
        "title": "title_column",
        "body": "body_column",
        "tags": "tags_column",
        "category": "category_column",
        "updated_at": "updated_at_column",
    }
    for column, canonical in entry_select_columns(source):
        if column.lower() not in present:
            raise SourceError(
                f"Table {table_label} has no column {column!r} (it has: {', '.join(available)}). "
                f"Set {settings[canonical]} or source_query."
            )


def check_query_columns(columns: Sequence[str]) -> None:
    missing = [c for c in ("id", "title", "body") if c not in columns]
    if missing:
        raise SourceError(
            f"source_query returned columns {', '.join(columns) or '(none)'}; it must return "
            f"id, title, body (missing: {', '.join(missing)}). Alias them, e.g. "
            "SELECT post_id AS id, subject AS title, content AS body FROM posts."
        )


def check_results_columns(
    available: Sequence[str], table_label: str, expected: Sequence[str]
) -> None:
    missing = [c for c in expected if c not in available]
    if missing:
        raise SourceError(
            f"Results table {table_label} exists but has no column {missing[0]!r} (it has: "
            f"{', '.join(available)}); it was not written. Set results_table to a new name, "
            "or drop that table so related can create it."
        )


def lock_key(results_table: str) -> int:
    """A stable signed 64-bit key for the run lock of one results table."""
    import hashlib

    digest = hashlib.sha256(f"related:{results_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def acquire_run_lock(try_lock: Callable[[], bool], results_table: str, run: RunSettings) -> None:
    """Call ``try_lock`` until it succeeds; give up at once, or after ``run.lock_timeout``
    seconds with ``run.wait_for_lock``, with LockedError (exit code 3)."""
    started = time.monotonic()
    while not try_lock():
        waited = time.monotonic() - started
        if not run.wait_for_lock or waited >= run.lock_timeout:
            raise LockedError(
                locked_message(results_table, run.lock_timeout if run.wait_for_lock else 0)
            )
        time.sleep(min(0.2, max(0.01, run.lock_timeout - waited)))


def run_outcome_values(outcome: RunOutcome, write: WriteReport | None) -> tuple[Any, ...]:
    """Parameters for the UPDATE of the run log, in FINISH_COLUMNS order, then the run_id."""
    counts = (write.inserted, write.updated, write.deleted, write.total) if write else (None,) * 4
    return (
        datetime.now(UTC),
        outcome.status,
        outcome.entries,
        outcome.pairs,
        outcome.input_fingerprint,
        outcome.message,
        *counts,
        outcome.run_id,
    )


FINISH_COLUMNS = (
    "finished_at",
    "status",
    "entries",
    "pairs",
    "input_fingerprint",
    "message",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "rows_total",
)


def locked_message(results_table: str, waited: float) -> str:
    waited_text = f" after waiting {waited:g} s" if waited else ""
    return (
        f"Another related run is writing {results_table!r}{waited_text}; this run did nothing. "
        "Retry later, or pass --wait-for-lock (RELATED_WAIT_FOR_LOCK=true) to wait up to "
        "--lock-timeout seconds."
    )
