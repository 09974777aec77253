"""SQLite through the stdlib sqlite3 module (the embedded default)."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from datetime import datetime

from related.config import RunSettings, SourceSettings, validate_identifier
from related.db import (
    FINISH_COLUMNS,
    RUN_COLUMNS,
    CachedTokens,
    Database,
    ResultRow,
    ResultsLayout,
    RunOutcome,
    RunRecord,
    StoredNeighbour,
    TokenCacheUpdate,
    WriteReport,
    acquire_run_lock,
    cached_tokens,
    check_query_columns,
    check_results_columns,
    check_source_columns,
    entry_select_columns,
    mask_url,
    run_outcome_values,
    sqlite_path,
    token_terms_table,
)
from related.entries import Entries, entries_from_rows
from related.errors import DatabaseError, SourceError

STAGING = "temp.related_staging"


def quote(name: str) -> str:
    """Quote a (possibly schema-qualified) identifier already checked by validate_identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _decode_text(raw: bytes) -> str:
    # Invalid UTF-8 in a TEXT column would abort the read; replace the bad bytes instead.
    return raw.decode("utf-8", errors="replace")


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, url: str, *, run: RunSettings | None = None, create: bool = False):
        self.url = url
        self.path = sqlite_path(url)
        if not create and not self.path.exists():
            raise SourceError(
                f"SQLite database {self.path} does not exist ({mask_url(url)}). Check "
                "DATABASE_URL: sqlite:///relative.db is relative to the working directory, "
                "sqlite:////absolute.db is absolute."
            )
        busy_timeout = (run or RunSettings()).db_lock_timeout
        try:
            # isolation_level=None: autocommit; the one write transaction is explicit below.
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout)
        except sqlite3.Error as exc:
            raise DatabaseError(f"Cannot open SQLite database {self.path}: {exc}.") from None
        self.conn.text_factory = _decode_text

    def close(self) -> None:
        self.conn.close()

    # -- reading ------------------------------------------------------------------------------

    def _columns_of(self, table: str) -> list[str] | None:
        try:
            cursor = self.conn.execute(f"SELECT * FROM {quote(table)} LIMIT 0")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise DatabaseError(f"Cannot read table {table!r}: {exc}.") from None
        return [d[0] for d in cursor.description]

    def read_entries(self, source: SourceSettings) -> Entries:
        query = self.source_query(source)
        if query:
            label = f"preset {source.preset!r}" if source.preset else "source_query"
            try:
                cursor = self.conn.execute(query)
            except sqlite3.Error as exc:
                raise SourceError(f"{label} failed: {exc}. Fix the query.") from None
            columns = [d[0].lower() for d in cursor.description or ()]
            check_query_columns(columns)
        else:
            label = f"table {source.source_table!r}"
            available = self._columns_of(source.source_table)
            if available is None:
                raise SourceError(
                    f"Table {source.source_table!r} does not exist in {self.display_url}. "
                    "Set source_table or source_query."
                )
            check_source_columns(available, source, repr(source.source_table))
            pairs = entry_select_columns(source)
            select = ", ".join(f"{quote(col)} AS {canon}" for col, canon in pairs)
            statement = f"SELECT {select} FROM {quote(source.source_table)}"
            if source.source_where:
                statement += f" WHERE ({source.source_where})"
            try:
                cursor = self.conn.execute(statement)
            except sqlite3.Error as exc:
                raise SourceError(f"Reading {label} failed: {exc}. Check source_where.") from None
            columns = [canon for _, canon in pairs]
        rows = cursor.fetchall()
        id_at = columns.index("id")
        integer_ids = rows and all(isinstance(r[id_at], int) for r in rows)
        return entries_from_rows(
            rows,
            columns=columns,
            id_type="INTEGER" if integer_ids else "TEXT",
            tags_separator=source.tags_separator,
            source_name=label,
        )

    def read_results(self, layout: ResultsLayout) -> list[ResultRow] | None:
        if self._columns_of(layout.table) is None:
            return None
        rank = "rank" if layout.has_rank else "0"
        rows = self.conn.execute(
            f"SELECT entry_id, {quote(layout.related_column)}, score, {rank} "
            f"FROM {quote(layout.table)}"
        ).fetchall()
        return [ResultRow(*row) for row in rows]

    def count_results(self, layout: ResultsLayout) -> int | None:
        if self._columns_of(layout.table) is None:
            return None
        return self.conn.execute(f"SELECT count(*) FROM {quote(layout.table)}").fetchone()[0]

    # -- writing ------------------------------------------------------------------------------

    def write_results(
        self,
        rows: Sequence[ResultRow],
        *,
        layout: ResultsLayout,
        id_type: str,
        outcome: RunOutcome | None = None,
    ) -> WriteReport:
        validate_identifier(layout.table, "results_table", qualified=True)
        conn = self.conn
        try:
            conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
            conn.execute(
                f"CREATE TABLE {STAGING} (entry_id {id_type} NOT NULL, "
                f"related_id {id_type} NOT NULL, score REAL NOT NULL, rank INTEGER NOT NULL, "
                "PRIMARY KEY (entry_id, related_id))"
            )
            # BEGIN IMMEDIATE takes the write lock now, so a second writer waits here instead
            # of failing halfway; readers keep seeing the old rows until COMMIT.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(f"INSERT INTO {STAGING} VALUES (?, ?, ?, ?)", rows)
                report = self._apply_staging(layout, id_type)
                if outcome is not None:
                    self.finish_run(outcome, report)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"Writing {layout.table!r} failed, previous results kept: {exc}."
            ) from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
        return report

    def _apply_staging(self, layout: ResultsLayout, id_type: str) -> WriteReport:
        conn, target, related = self.conn, quote(layout.table), quote(layout.related_column)
        existing = self._columns_of(layout.table)
        if existing is None:
            rank_column = ", rank INTEGER NOT NULL" if layout.has_rank else ""
            conn.execute(
                f"CREATE TABLE {target} (entry_id {id_type} NOT NULL, "
                f"{related} {id_type} NOT NULL, score REAL NOT NULL{rank_column}, "
                f"PRIMARY KEY (entry_id, {related}))"
            )
        else:
            check_results_columns(existing, repr(layout.table), layout.columns)
        same_pair = f"t.entry_id = s.entry_id AND t.{related} = s.related_id"
        deleted = conn.execute(
            f"DELETE FROM {target} AS t WHERE NOT EXISTS "
            f"(SELECT 1 FROM {STAGING} AS s WHERE {same_pair})"
        ).rowcount
        set_rank, rank_differs, rank_value = (
            (", rank = s.rank", " OR t.rank IS NOT s.rank", ", s.rank")
            if layout.has_rank
            else ("", "", "")
        )
        updated = conn.execute(
            f"UPDATE {target} AS t SET score = s.score{set_rank} FROM {STAGING} AS s "
            f"WHERE {same_pair} AND (t.score IS NOT s.score{rank_differs})"
        ).rowcount
        columns = ", ".join(quote(c) for c in layout.columns)
        inserted = conn.execute(
            f"INSERT INTO {target} ({columns}) "
            f"SELECT s.entry_id, s.related_id, s.score{rank_value} FROM {STAGING} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {same_pair})"
        ).rowcount
        (total,) = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
        return WriteReport(layout.table, inserted, updated, deleted, total)

    # -- the token cache ----------------------------------------------------------------------

    def read_token_cache(self, table: str) -> CachedTokens | None:
        terms_table = token_terms_table(table)
        if self._columns_of(table) is None or self._columns_of(terms_table) is None:
            return None
        try:
            # One read transaction, so both tables come from the same state: a run rewriting
            # the cache meanwhile (dry runs, eval and explain take no lock) must not pair new
            # ids with old terms.
            self.conn.execute("BEGIN")
            try:
                terms = self.conn.execute(
                    f"SELECT term_id, term FROM {quote(terms_table)} ORDER BY term_id"
                ).fetchall()
                rows = self.conn.execute(f"SELECT key, term_ids, counts FROM {quote(table)}")
                cached = {key: (ids, counts) for key, ids, counts in rows}
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseError(f"Reading the token cache {table!r} failed: {exc}.") from None
        return cached_tokens(terms, cached)

    def write_token_cache(self, table: str, update: TokenCacheUpdate) -> None:
        validate_identifier(table, "token_cache_table", qualified=True)
        conn, rows, terms = self.conn, quote(table), quote(token_terms_table(table))
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {rows} (key BLOB PRIMARY KEY, "
                    "term_ids BLOB NOT NULL, counts BLOB NOT NULL)"
                )
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {terms} "
                    "(term_id INTEGER PRIMARY KEY, term TEXT NOT NULL)"
                )
                if update.rewrite:
                    conn.execute(f"DELETE FROM {rows}")
                    conn.execute(f"DELETE FROM {terms}")
                conn.executemany(
                    f"DELETE FROM {rows} WHERE key = ?", ((k,) for k in update.stale_keys)
                )
                conn.executemany(f"INSERT OR REPLACE INTO {terms} VALUES (?, ?)", update.new_terms)
                conn.executemany(f"INSERT OR REPLACE INTO {rows} VALUES (?, ?, ?)", update.new_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseError(f"Writing the token cache {table!r} failed: {exc}.") from None

    # -- one run at a time, and the run log --------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, results_table: str, run: RunSettings) -> Iterator[None]:
        # SQLite has no advisory locks; an flock on a file beside the database gives the same
        # guarantee to every process on this machine, and the OS releases it if we die.
        lock_path = f"{self.path}.related-{results_table}.lock"
        with open(lock_path, "a+b") as handle:

            def try_lock() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            acquire_run_lock(try_lock, results_table, run)
            try:
                yield
            finally:
                # The file stays: unlinking it would let a third process lock a new file
                # while a second one still waits on the old one.
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ensure_runs_table(self, runs_table: str) -> None:
        if self._columns_of(runs_table) is None:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(runs_table)} ("
                "run_id INTEGER PRIMARY KEY AUTOINCREMENT, results_table TEXT NOT NULL, "
                "started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL, "
                "entries INTEGER, pairs INTEGER, rows_inserted INTEGER, rows_updated INTEGER, "
                "rows_deleted INTEGER, rows_total INTEGER, settings_fingerprint TEXT, "
                "input_fingerprint TEXT, version TEXT, message TEXT)"
            )

    def start_run(self, runs_table: str, record: RunRecord) -> int:
        self._ensure_runs_table(runs_table)
        table = quote(runs_table)
        self.conn.execute(
            f"UPDATE {table} SET status = 'interrupted' "
            "WHERE status = 'running' AND results_table = ?",
            (record.results_table,),
        )
        columns = RUN_COLUMNS[1:]
        values = astuple(record)[1:]
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(v.isoformat() if hasattr(v, "isoformat") else v for v in values),
        )
        return int(cursor.lastrowid)

    def finish_run(self, outcome: RunOutcome, write: WriteReport | None = None) -> None:
        assignments = ", ".join(f"{column} = ?" for column in FINISH_COLUMNS)
        values = run_outcome_values(outcome, write)
        self.conn.execute(
            f"UPDATE {quote(outcome.runs_table)} SET {assignments} WHERE run_id = ?",
            tuple(v.isoformat() if isinstance(v, datetime) else v for v in values),
        )

    def list_runs(
        self, runs_table: str, *, limit: int = 20, results_table: str | None = None
    ) -> list[RunRecord]:
        if self._columns_of(runs_table) is None:
            return []
        where, params = ("WHERE results_table = ?", (results_table,)) if results_table else ("", ())
        rows = self.conn.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM {quote(runs_table)} {where} "
            "ORDER BY run_id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [RunRecord(*row) for row in rows]

    # -- show ---------------------------------------------------------------------------------

    def read_neighbours(
        self, entry_id: str, *, layout: ResultsLayout, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        if self._columns_of(layout.table) is None:
            raise SourceError(
                f"Results table {layout.table!r} does not exist yet. Run `related run` first."
            )
        key: int | str = entry_id
        declared = self.conn.execute(
            "SELECT type FROM pragma_table_info(?) WHERE name = 'entry_id'",
            (layout.table.split(".")[-1],),
        ).fetchone()
        if declared and "INT" in declared[0].upper():
            try:
                key = int(entry_id)
            except ValueError:
                raise SourceError(f"Entry id {entry_id!r} is not an integer.") from None
        titles = self._titles_relation(source)
        related = quote(layout.related_column)
        order = "r.rank" if layout.has_rank else "r.score DESC"
        own = self.conn.execute(
            f"SELECT title FROM {titles} AS s WHERE s.id = ?", (key,)
        ).fetchone()
        rows = self.conn.execute(
            f"SELECT r.{related}, s.title, r.score FROM {quote(layout.table)} AS r "
            f"LEFT JOIN {titles} AS s ON s.id = r.{related} "
            f"WHERE r.entry_id = ? ORDER BY {order}, r.{related}",
            (key,),
        ).fetchall()
        neighbours = [
            StoredNeighbour(rid, title, score, rank)
            for rank, (rid, title, score) in enumerate(rows, start=1)
        ]
        return (own[0] if own else None), neighbours

    def _titles_relation(self, source: SourceSettings) -> str:
        query = self.source_query(source)
        if query:
            return f"({query})"
        return (
            f"(SELECT {quote(source.id_column)} AS id, {quote(source.title_column)} AS title "
            f"FROM {quote(source.source_table)})"
        )
