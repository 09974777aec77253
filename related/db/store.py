"""The database algorithm, written once against a Dialect (dialects/): ensure the job's
tables, read entries, stage and publish results in one short transaction, the run log, the
token cache, the read-back for show/explain/eval, and the one-run-at-a-time lock.

Every driver error raised inside is turned into the project's own error (db/errors.py) with
what was being done, so no traceback reaches the user and no password leaks.

The write path, on every backend:
  1. before anything is read or tokenised: create the run log, the token cache and the
     results table when missing, check them when present (never inside a transaction: MySQL
     commits implicitly on DDL);
  2. after the work: load the rows into a private temporary table, outside any transaction;
  3. one short transaction: delete the pairs that are gone, update the changed ones, insert
     the new ones, record the run's outcome. Readers see all old or all new rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from related.config import OutputSettings, RunSettings, SourceSettings, validate_identifier
from related.db import schema
from related.db.dialects import Dialect
from related.db.errors import DriverFailure, translate
from related.db.records import (
    RUN_COLUMNS,
    CachedTokens,
    ResultRow,
    ResultsLayout,
    RunOutcome,
    RunRecord,
    StoredNeighbour,
    TokenCacheUpdate,
    WriteReport,
    cached_tokens,
)
from related.db.urls import scrub
from related.entries import Entries, entries_from_rows
from related.errors import RelatedError, SourceError
from related.presets import preset_query

log = logging.getLogger("related")

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


class LockedError(RelatedError):
    """Another run holds the lock for this results table."""

    exit_code = 3


def token_terms_table(table: str) -> str:
    """The token cache's second table: term id -> term."""
    return f"{table}_terms"


class Store:
    """One connection to the blog's database, through one dialect. Use as a context manager."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self._cache_usable = True  # False once prepare() found the token cache unusable

    @property
    def url(self) -> str:
        return self.dialect.url

    @property
    def run(self) -> RunSettings:
        return self.dialect.run

    @property
    def display_url(self) -> str:
        return self.dialect.display_url

    @property
    def backend(self) -> str:
        return self.dialect.name

    def close(self) -> None:
        with contextlib.suppress(*self.dialect.driver_errors):
            self.dialect.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- errors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, context: str, *, query_hint: str = "") -> Iterator[None]:
        """Driver errors inside become the project's errors, prefixed with ``context``."""
        try:
            yield
        except self.dialect.driver_errors as exc:
            raise self._error(exc, context, query_hint=query_hint) from None

    def _error(self, exc: BaseException, context: str, *, query_hint: str = "") -> RelatedError:
        detail = scrub(self.dialect.describe(exc), self.url)
        failure = DriverFailure(self.dialect.classify(exc), detail)
        return translate(
            failure, context, run=self.run, query_hint=query_hint, backend=self.backend
        )

    # -- small helpers -------------------------------------------------------------------------

    def _q(self, name: str) -> str:
        return self.dialect.quote(name)

    def _columns(self, table: str) -> dict[str, str] | None:
        with self._translated(f"Cannot read the columns of {table!r}"):
            return self.dialect.table_columns(table)

    def _create_sql(
        self, name: str, spec: schema.TableSpec, *, id_type: str = "", temporary: bool = False
    ) -> str:
        d = self.dialect
        columns = [
            f"{d.quote_part(c.name)} {d.type_name(c.kind, id_type)}"
            + ("" if c.nullable or c.kind == "serial" else " NOT NULL")
            for c in spec.columns
        ]
        if spec.primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(map(d.quote_part, spec.primary_key))})")
        head = d.create_temporary(name) if temporary else f"CREATE TABLE {self._q(name)}"
        return f"{head} ({', '.join(columns)}){d.table_options}"

    # -- ensure: the job's tables, before anything is read ------------------------------------

    def prepare(self, output: OutputSettings, *, token_cache: bool, create: bool) -> None:
        """Create the run log and the token cache when missing (with ``create``) and check
        the run log, the cache and an existing results table. Refuses an incompatible table
        at once, with the statement that fixes it. A token cache that cannot be created or
        does not fit costs speed, not the run: a warning, and this run does without it."""
        if create:
            self._ensure_table(output.runs_table, schema.RUN_LOG, "runs_table")
        else:
            self._check_table(output.runs_table, schema.RUN_LOG, "runs_table")
        if token_cache:
            self._prepare_token_cache(output.token_cache_table, create=create)
        layout = ResultsLayout.from_settings(output)
        existing = self._columns(layout.table)
        if existing is not None:
            self._check_results_table(layout, existing, id_type=None)

    def _ensure_table(self, table: str, spec: schema.TableSpec, setting: str) -> None:
        if self._check_table(table, spec, setting):
            return
        with self._translated(f"Creating {setting} {table!r} failed"):
            self.dialect.execute(self._create_sql(table, spec))

    def _check_table(self, table: str, spec: schema.TableSpec, setting: str) -> bool:
        """True if ``table`` exists with every column of ``spec``; SourceError if it exists
        with another shape; False if it does not exist."""
        existing = self._columns(table)
        if existing is None:
            return False
        missing = [name for name in spec.names if name not in existing]
        if missing:
            raise SourceError(
                f"Table {table!r} ({setting}) exists but has no column {missing[0]!r} (it has: "
                f"{', '.join(existing)}); nothing was done. Set {setting} to another name, or "
                f"move that table away: ALTER TABLE {self._q(table)} RENAME TO "
                f"{self.dialect.quote_part(table.split('.')[-1] + '_old')}"
            )
        return True

    def _prepare_token_cache(self, table: str, *, create: bool) -> None:
        try:
            for name, spec in (
                (table, schema.TOKEN_CACHE_ROWS),
                (token_terms_table(table), schema.TOKEN_CACHE_TERMS),
            ):
                if create:
                    self._ensure_table(name, spec, "token_cache_table")
                else:
                    self._check_table(name, spec, "token_cache_table")
        except RelatedError as exc:
            self._cache_usable = False
            log.warning(
                "Cannot use the token cache %r: %s The run goes on and tokenises every entry. "
                "Grant the job CREATE (or create the tables, see examples/), set "
                "token_cache_table to another name, or set token_cache = false.",
                table,
                exc,
            )

    def ensure_results_table(self, layout: ResultsLayout, id_type: str) -> None:
        """Create the results table for ids of ``id_type`` if missing, else check that it
        takes them: after the entries are read (their id type decides the columns), before
        anything is tokenised, outside any transaction."""
        existing = self._columns(layout.table)
        if existing is not None:
            self._check_results_table(layout, existing, id_type=id_type)
            return
        spec = schema.results_spec(layout.related_column, layout.has_rank)
        with self._translated(f"Creating results_table {layout.table!r} failed"):
            self.dialect.execute(self._create_sql(layout.table, spec, id_type=id_type))

    def _check_results_table(
        self, layout: ResultsLayout, columns: dict[str, str], *, id_type: str | None
    ) -> None:
        """An existing results table must have our columns, take ids of the source's kind,
        store scores without rounding, and (MySQL) take part in transactions."""
        d, table = self.dialect, layout.table
        missing = [c for c in layout.columns if c not in columns]
        if missing:
            raise SourceError(
                f"Results table {table!r} exists but has no column {missing[0]!r} (it has: "
                f"{', '.join(columns)}); it was not written. Set results_table to a new name, "
                "or drop that table so related can create it."
            )
        if id_type is not None:
            existing, wanted = columns["entry_id"], id_type.lower()
            if existing != wanted and d.kind_of(existing) != d.kind_of(wanted):
                raise SourceError(
                    f"Results table {table!r} has entry_id of type {existing}, but the source "
                    f"ids are {wanted}; it was not written. Set results_table to a new name or "
                    "drop that table so related can create it."
                )
        score = columns["score"]
        if d.kind_of(score) != "score" and (d.integer_columns_round or d.kind_of(score) == "text"):
            fix = d.fix_column_type(table, "score", d.type_name("score", ""))
            raise SourceError(
                f"Results table {table!r} stores score as {score}, which would round every "
                f"score; it was not written. Run: {fix}"
            )
        with self._translated(f"Cannot check results_table {table!r}"):
            fix = d.refuses_transactions(table)
        if fix:
            raise SourceError(
                f"Results table {table!r} is stored in an engine without transactions, so "
                f"readers could see a half-written list; it was not written. Run: {fix}"
            )

    # -- reading entries ---------------------------------------------------------------------

    def source_query(self, source: SourceSettings) -> str | None:
        """The SQL to read entries with, when not reading a plain table."""
        if source.preset:
            return preset_query(source.preset, self.backend, source.table_prefix)
        return source.source_query

    def read_entries(self, source: SourceSettings) -> Entries:
        d = self.dialect
        custom = self.source_query(source)
        if custom:
            label = f"preset {source.preset!r}" if source.preset else "source_query"
            statement, hint = d.fragment(custom), "Fix the query."
        else:
            label = f"table {source.source_table!r}"
            available = self._columns(source.source_table)
            if available is None:
                raise SourceError(
                    f"Table {source.source_table!r} does not exist in {self.display_url}"
                    f"{d.missing_table_hint}. Set source_table or source_query."
                )
            check_source_columns(list(available), source, repr(source.source_table))
            select = ", ".join(
                f"{d.quote_part(column)} AS {d.quote_part(canonical)}"
                for column, canonical in entry_select_columns(source)
            )
            statement = f"SELECT {select} FROM {d.quote(source.source_table)}"
            if source.source_where:
                statement += f" WHERE ({d.fragment(source.source_where)})"
            hint = "Check source_where."
        with (
            self._translated(f"Reading {label} failed", query_hint=hint),
            d.stream(statement) as streamed,
        ):
            check_query_columns(streamed.columns)
            entries = entries_from_rows(
                streamed.rows,
                columns=streamed.columns,
                id_type="",
                tags_separator=source.tags_separator,
                source_name=label,
            )
            id_type = d.id_type(entries.ids, streamed.description)
        return dataclasses.replace(entries, id_type=id_type)

    # -- results: write ----------------------------------------------------------------------

    def write_results(
        self,
        rows: Sequence[ResultRow],
        *,
        layout: ResultsLayout,
        id_type: str,
        outcome: RunOutcome | None = None,
    ) -> WriteReport:
        """Replace the results with ``rows`` in ONE transaction; ``outcome`` is recorded in
        the run log inside it, so the log never claims a success that was not committed."""
        d = self.dialect
        staging = d.quote_part(schema.STAGING_TABLE)
        # Checked again (one catalog query): the table may have changed during a long run,
        # and library callers may not have called ensure_results_table.
        self.ensure_results_table(layout, id_type)
        try:
            with self._translated(f"Writing {layout.table!r} failed, previous results kept"):
                d.execute(d.drop_temporary(schema.STAGING_TABLE))
                d.execute(
                    self._create_sql(
                        schema.STAGING_TABLE, schema.STAGING, id_type=id_type, temporary=True
                    )
                )
                # Loading may take a while; the transaction that publishes must not.
                d.bulk_insert(staging, [d.quote_part(n) for n in schema.STAGING.names], rows)
                d.analyze(staging)
                with d.transaction():
                    report = self._publish(layout, staging)
                    if outcome is not None:
                        self._finish_run(outcome, report)
        finally:
            if d.usable:
                with contextlib.suppress(*d.driver_errors):
                    d.execute(d.drop_temporary(schema.STAGING_TABLE))
        return report

    def _publish(self, layout: ResultsLayout, staging: str) -> WriteReport:
        d, q = self.dialect, self.dialect.quote_part
        target = self._q(layout.table)
        entry, related, score, rank = q("entry_id"), q(layout.related_column), q("score"), q("rank")
        own_pair = f"s.{entry} = {target}.{entry} AND s.{q('related_id')} = {target}.{related}"
        deleted = d.execute(
            f"DELETE FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {staging} AS s WHERE {own_pair})"
        )
        same_pair = f"t.{entry} = s.{entry} AND t.{related} = s.{q('related_id')}"
        changed = d.is_distinct(f"t.{score}", f"s.{score}")
        assignments = [score]
        if layout.has_rank:
            changed += " OR " + d.is_distinct(f"t.{rank}", f"s.{rank}")
            assignments.append(rank)
        updated = d.execute(d.update_from(target, staging, assignments, same_pair, changed))
        values = f"s.{entry}, s.{q('related_id')}, s.{score}" + (
            f", s.{rank}" if layout.has_rank else ""
        )
        columns = ", ".join(map(q, layout.columns))
        inserted = d.execute(
            f"INSERT INTO {target} ({columns}) SELECT {values} FROM {staging} AS s "
            f"LEFT JOIN {target} AS t ON {same_pair} WHERE t.{entry} IS NULL"
        )
        ((total,),) = d.query(f"SELECT count(*) FROM {target}")
        return WriteReport(layout.table, inserted, updated, deleted, int(total))

    # -- results: read back ------------------------------------------------------------------

    def read_results(self, layout: ResultsLayout) -> list[ResultRow] | None:
        """Every stored result row (None if the table does not exist yet)."""
        if self._columns(layout.table) is None:
            return None
        q = self.dialect.quote_part
        rank = q("rank") if layout.has_rank else "0"
        with self._translated(f"Reading {layout.table!r} failed"):
            rows = self.dialect.query(
                f"SELECT {q('entry_id')}, {q(layout.related_column)}, {q('score')}, {rank} "
                f"FROM {self._q(layout.table)}"
            )
        return [ResultRow(*row) for row in rows]

    def count_results(self, layout: ResultsLayout) -> int | None:
        if self._columns(layout.table) is None:
            return None
        with self._translated(f"Reading {layout.table!r} failed"):
            ((count,),) = self.dialect.query(f"SELECT count(*) FROM {self._q(layout.table)}")
        return int(count)

    def read_neighbours(
        self, entry_id: str, *, layout: ResultsLayout, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        """The stored neighbours of one entry (id given as text) and the entry's title."""
        d, q, p = self.dialect, self.dialect.quote_part, self.dialect.placeholder
        columns = self._columns(layout.table)
        if columns is None:
            raise SourceError(
                f"Results table {layout.table!r} does not exist yet. Run `related run` first."
            )
        key: int | str = entry_id
        if d.kind_of(columns["entry_id"]) == "integer":
            try:
                key = int(entry_id)
            except ValueError:
                raise SourceError(f"Entry id {entry_id!r} is not an integer.") from None
        custom = self.source_query(source)
        if custom:
            titles = f"({d.fragment(custom)})"
        else:
            titles = (
                f"(SELECT {q(source.id_column)} AS {q('id')}, {q(source.title_column)} AS "
                f"{q('title')} FROM {d.quote(source.source_table)})"
            )
        related = q(layout.related_column)
        order = f"r.{q('rank')}" if layout.has_rank else f"r.{q('score')} DESC"
        with self._translated(
            f"Reading the entry {entry_id!r} failed", query_hint="Fix the query."
        ):
            own = d.query(
                f"SELECT s.{q('title')} FROM {titles} AS s WHERE s.{q('id')} = {p}", (key,)
            )
            rows = d.query(
                f"SELECT r.{related}, s.{q('title')}, r.{q('score')} FROM {self._q(layout.table)} "
                f"AS r LEFT JOIN {titles} AS s ON s.{q('id')} = r.{related} "
                f"WHERE r.{q('entry_id')} = {p} ORDER BY {order}, r.{related}",
                (key,),
            )
        neighbours = [
            StoredNeighbour(rid, title, score, rank)
            for rank, (rid, title, score) in enumerate(rows, start=1)
        ]
        return (own[0][0] if own else None), neighbours

    # -- the token cache ---------------------------------------------------------------------

    def read_token_cache(self, table: str) -> CachedTokens | None:
        """The token cache kept in ``table`` and ``token_terms_table(table)``; None if it does
        not exist yet. A cache whose term ids are not 0..n-1 is returned empty (rebuilt)."""
        terms_table = token_terms_table(table)
        if not self._cache_usable:
            return None
        if self._columns(table) is None or self._columns(terms_table) is None:
            return None
        d, q = self.dialect, self.dialect.quote_part
        # One snapshot for both tables: a run rewriting the cache meanwhile (dry runs, eval
        # and explain take no lock) must not pair new ids with old terms.
        with self._translated(f"Reading the token cache {table!r} failed"), d.snapshot():
            terms = d.query(
                f"SELECT {q('term_id')}, {q('term')} FROM {self._q(terms_table)} "
                f"ORDER BY {q('term_id')}"
            )
            with d.stream(
                f"SELECT {q('key')}, {q('term_ids')}, {q('counts')} FROM {self._q(table)}",
                binary=True,
            ) as streamed:
                rows = {
                    bytes(key): (bytes(ids), bytes(counts)) for key, ids, counts in streamed.rows
                }
        return cached_tokens(terms, rows)

    def write_token_cache(self, table: str, update: TokenCacheUpdate) -> None:
        """Apply ``update`` in one transaction (the tables were made by ``prepare``)."""
        if not self._cache_usable:
            return
        validate_identifier(table, "token_cache_table", qualified=True)
        d, q = self.dialect, self.dialect.quote_part
        rows, terms = self._q(table), self._q(token_terms_table(table))
        with self._translated(f"Writing the token cache {table!r} failed"), d.transaction():
            if update.rewrite:
                d.execute(f"DELETE FROM {rows}")
                d.execute(f"DELETE FROM {terms}")
            elif update.stale_keys:
                d.delete_keys(rows, q("key"), update.stale_keys)
            d.bulk_insert(terms, [q("term_id"), q("term")], update.new_terms)
            # In key order: the key is a hash, and rows inserted in hash order land all over a
            # B-tree, slow to write and left with half-empty pages (InnoDB most of all).
            new_rows = sorted(update.new_rows, key=itemgetter(0))
            d.bulk_insert(rows, [q("key"), q("term_ids"), q("counts")], new_rows)

    # -- one run at a time, and the run log --------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, results_table: str, run: RunSettings) -> Iterator[None]:
        """Hold the one-run-at-a-time lock for ``results_table``; LockedError if busy. The
        lock dies with the process or its connection."""
        d = self.dialect
        with self._translated("Taking the run lock failed"):
            acquire_run_lock(lambda: d.try_lock(results_table), results_table, run)
        try:
            yield
        finally:
            if d.usable:
                with contextlib.suppress(*d.driver_errors):
                    d.unlock(results_table)

    def start_run(self, runs_table: str, record: RunRecord) -> int:
        """Insert a 'running' row; return its run_id. Called with the run lock held, so older
        'running' rows of the same results table belong to runs that died: 'interrupted'."""
        d, q, p = self.dialect, self.dialect.quote_part, self.dialect.placeholder
        table = self._q(runs_table)
        columns = RUN_COLUMNS[1:]
        with self._translated(f"Writing the run log {runs_table!r} failed"):
            d.execute(
                f"UPDATE {table} SET {q('status')} = 'interrupted' "
                f"WHERE {q('status')} = 'running' AND {q('results_table')} = {p}",
                (record.results_table,),
            )
            return d.insert_returning_id(
                f"INSERT INTO {table} ({', '.join(map(q, columns))}) "
                f"VALUES ({', '.join([p] * len(columns))})",
                astuple(record)[1:],
                q("run_id"),
            )

    def recover(self) -> None:
        """After an interrupt: make the connection usable again to record the outcome."""
        with self._translated("Reconnecting after the interrupt failed"):
            self.dialect.recover()

    def finish_run(self, outcome: RunOutcome, write: WriteReport | None = None) -> None:
        with self._translated(f"Writing the run log {outcome.runs_table!r} failed"):
            self._finish_run(outcome, write)

    def _finish_run(self, outcome: RunOutcome, write: WriteReport | None) -> None:
        d, q, p = self.dialect, self.dialect.quote_part, self.dialect.placeholder
        assignments = ", ".join(f"{q(column)} = {p}" for column in FINISH_COLUMNS)
        d.execute(
            f"UPDATE {self._q(outcome.runs_table)} SET {assignments} WHERE {q('run_id')} = {p}",
            run_outcome_values(outcome, write),
        )

    def list_runs(
        self, runs_table: str, *, limit: int = 20, results_table: str | None = None
    ) -> list[RunRecord]:
        """Most recent first; [] if the run log does not exist yet."""
        return self._runs(runs_table, limit=limit, results_table=results_table)

    def _runs(
        self,
        runs_table: str,
        *,
        limit: int,
        results_table: str | None = None,
        status: str | None = None,
    ) -> list[RunRecord]:
        if not self._check_table(runs_table, schema.RUN_LOG, "runs_table"):
            return []
        q, p = self.dialect.quote_part, self.dialect.placeholder
        conditions = [
            (column, value)
            for column, value in (("results_table", results_table), ("status", status))
            if value
        ]
        where = " AND ".join(f"{q(column)} = {p}" for column, _ in conditions)
        params = (*(value for _, value in conditions), limit)
        with self._translated(f"Reading the run log {runs_table!r} failed"):
            rows = self.dialect.query(
                f"SELECT {', '.join(map(q, RUN_COLUMNS))} FROM {self._q(runs_table)} "
                f"{'WHERE ' + where if where else ''} ORDER BY {q('run_id')} DESC LIMIT {p}",
                params,
            )
        return [_run_record(row) for row in rows]

    def last_successful_run(self, runs_table: str, results_table: str) -> RunRecord | None:
        """However many skipped or failed runs came after it (a 5-minute cron on a quiet
        blog logs hundreds)."""
        runs = self._runs(runs_table, limit=1, results_table=results_table, status="success")
        return runs[0] if runs else None


# -- shared pieces, pure ---------------------------------------------------------------------


def _run_record(row: Sequence[Any]) -> RunRecord:
    """A run log row with its times as aware UTC datetimes on every backend (SQLite keeps ISO
    text, MySQL's DATETIME has no zone: the job writes UTC to both)."""
    record = RunRecord(*row)
    return dataclasses.replace(
        record, started_at=_utc(record.started_at), finished_at=_utc(record.finished_at)
    )


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


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


_COLUMN_SETTINGS = {
    "id": "id_column",
    "title": "title_column",
    "body": "body_column",
    "tags": "tags_column",
    "category": "category_column",
    "updated_at": "updated_at_column",
}


def check_source_columns(
    available: Sequence[str], source: SourceSettings, table_label: str
) -> None:
    """Raise SourceError naming the first configured column the table lacks."""
    present = {c.lower() for c in available}
    for column, canonical in entry_select_columns(source):
        if column.lower() not in present:
            raise SourceError(
                f"Table {table_label} has no column {column!r} (it has: {', '.join(available)}). "
                f"Set {_COLUMN_SETTINGS[canonical]} or source_query."
            )


def check_query_columns(columns: Sequence[str]) -> None:
    missing = [c for c in ("id", "title", "body") if c not in columns]
    if missing:
        raise SourceError(
            f"source_query returned columns {', '.join(columns) or '(none)'}; it must return "
            f"id, title, body (missing: {', '.join(missing)}). Alias them, e.g. "
            "SELECT post_id AS id, subject AS title, content AS body FROM posts."
        )


def acquire_run_lock(try_lock: Callable[[], bool], results_table: str, run: RunSettings) -> None:
    """Call ``try_lock`` until it succeeds; give up at once, or after ``run.lock_timeout``
    seconds with ``run.wait_for_lock``, with LockedError (exit code 3). Polling keeps every
    statement short, so statement_timeout never cuts a legitimate wait."""
    started = time.monotonic()
    while not try_lock():
        waited = time.monotonic() - started
        if not run.wait_for_lock or waited >= run.lock_timeout:
            raise LockedError(
                locked_message(results_table, run.lock_timeout if run.wait_for_lock else 0)
            )
        time.sleep(min(0.2, max(0.01, run.lock_timeout - waited)))


def locked_message(results_table: str, waited: float) -> str:
    waited_text = f" after waiting {waited:g} s" if waited else ""
    return (
        f"Another related run is writing {results_table!r}{waited_text}; this run did nothing. "
        "Retry later, or pass --wait-for-lock (RELATED_WAIT_FOR_LOCK=true) to wait up to "
        "--lock-timeout seconds."
    )


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
