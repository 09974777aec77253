"""PostgreSQL through psycopg 3, the production target.

The connection is in autocommit: reading and the long tokenising stages never hold a
transaction open ("idle in transaction"). Results are COPYed into a private temporary staging
table first, then ONE short transaction deletes the rows that are gone, updates the changed
ones and inserts the new ones. Readers keep seeing the old rows under MVCC until COMMIT, and
nothing takes more than ROW EXCLUSIVE on the results table (no TRUNCATE, no table swap).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

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
    lock_key,
    run_outcome_values,
    scrub,
    token_terms_table,
)
from related.entries import Entries, entries_from_rows
from related.errors import ConfigError, DatabaseError, SourceError

STAGING = "related_staging"
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9 _]*(\(\d+(,\d+)?\))?$")


def table_identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*validate_identifier(name, "table", qualified=True))


def _regclass_name(name: str) -> str:
    """A validated (schema.)table as text for ::regclass, quoted so case is kept."""
    return ".".join(f'"{part}"' for part in validate_identifier(name, "table", qualified=True))


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, run: RunSettings | None = None):
        self.url = url
        run = run or RunSettings()
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"Bad PostgreSQL URL {self.display_url!r}: {scrub(str(exc), url)}"
            ) from None
        # Every libpq parameter in the URL passes through untouched; we only fill gaps.
        extra: dict[str, Any] = {}
        if "application_name" not in params:
            extra["application_name"] = "related"
        if "connect_timeout" not in params:
            extra["connect_timeout"] = 10
        try:
            self.conn = psycopg.connect(url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Cannot connect to {self.display_url}: {self._error(exc)}"
            ) from None
        # Our own bounds, unless the URL's options already set them (the user's word wins).
        options = str(params.get("options", ""))
        for name, seconds in (
            ("statement_timeout", run.statement_timeout),
            ("lock_timeout", run.db_lock_timeout),
        ):
            if name not in options:
                self.conn.execute(
                    "SELECT set_config(%s, %s, false)", (name, f"{int(seconds * 1000)}ms")
                )

    def close(self) -> None:
        self.conn.close()

    def _error(self, exc: Exception) -> str:
        text = str(exc).strip()
        return scrub(text.splitlines()[0] if text else type(exc).__name__, self.url)

    # -- reading ------------------------------------------------------------------------------

    def _columns_of(self, table: str) -> list[str] | None:
        """Column names, or None if the table does not exist. Safe inside a transaction: a
        failed SELECT on a missing table would abort it, so ask the catalog first."""
        try:
            (exists,) = self.conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (_regclass_name(table),)
            ).fetchone()
            if not exists:
                return None
            cursor = self.conn.execute(
                sql.SQL("SELECT * FROM {} LIMIT 0").format(table_identifier(table))
            )
        except psycopg.Error as exc:
            raise DatabaseError(f"Cannot read table {table!r}: {self._error(exc)}") from None
        return [c.name for c in cursor.description or ()]

    def _type_name(self, oid: int) -> str:
        (name,) = self.conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
        if not _TYPE_NAME.match(name):
            raise SourceError(f"Entry ids have the unsupported type {name!r}. Cast them to text.")
        return name

    def read_entries(self, source: SourceSettings) -> Entries:
        custom = self.source_query(source)
        if custom:
            label = f"preset {source.preset!r}" if source.preset else "source_query"
            query: sql.Composable = sql.SQL(custom)  # trusted configuration
        else:
            label = f"table {source.source_table!r}"
            available = self._columns_of(source.source_table)
            if available is None:
                raise SourceError(
                    f"Table {source.source_table!r} does not exist in {self.display_url}. "
                    "Set source_table or source_query."
                )
            check_source_columns(available, source, repr(source.source_table))
            select = sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(sql.Identifier(col), sql.Identifier(canon))
                for col, canon in entry_select_columns(source)
            )
            query = sql.SQL("SELECT {} FROM {}").format(
                select, table_identifier(source.source_table)
            )
            if source.source_where:
                query = sql.SQL("{} WHERE ({})").format(query, sql.SQL(source.source_where))
        try:
            # A server-side cursor streams the rows instead of holding two copies in memory.
            with self.conn.transaction(), self.conn.cursor(name="related_entries") as cursor:
                cursor.itersize = 2000
                cursor.execute(query)
                columns = [c.name.lower() for c in cursor.description or ()]
                check_query_columns(columns)
                id_type = self._type_name(cursor.description[columns.index("id")].type_code)
                entries = entries_from_rows(
                    cursor,
                    columns=columns,
                    id_type=id_type,
                    tags_separator=source.tags_separator,
                    source_name=label,
                )
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise DatabaseError(f"Reading {label} failed: {self._error(exc)}") from None
            raise SourceError(
                f"Reading {label} failed: {self._error(exc)}. Check the query."
            ) from None
        return entries

    def read_results(self, layout: ResultsLayout) -> list[ResultRow] | None:
        if self._columns_of(layout.table) is None:
            return None
        rank = sql.Identifier("rank") if layout.has_rank else sql.SQL("0")
        rows = self.conn.execute(
            sql.SQL("SELECT entry_id, {}, score, {} FROM {}").format(
                sql.Identifier(layout.related_column), rank, table_identifier(layout.table)
            )
        ).fetchall()
        return [ResultRow(*row) for row in rows]

    def count_results(self, layout: ResultsLayout) -> int | None:
        if self._columns_of(layout.table) is None:
            return None
        query = sql.SQL("SELECT count(*) FROM {}").format(table_identifier(layout.table))
        return self.conn.execute(query).fetchone()[0]

    # -- writing ------------------------------------------------------------------------------

    def write_results(
        self,
        rows: Sequence[ResultRow],
        *,
        layout: ResultsLayout,
        id_type: str,
        outcome: RunOutcome | None = None,
    ) -> WriteReport:
        staging = sql.Identifier(STAGING)
        id_sql = sql.SQL(id_type)  # from format_type(), checked by _TYPE_NAME
        conn = self.conn
        try:
            # Staging outside the swap transaction: the COPY may take a while, the swap not.
            conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} (entry_id {id} NOT NULL, related_id {id} NOT NULL,"
                    " score double precision NOT NULL, rank smallint NOT NULL,"
                    " PRIMARY KEY (entry_id, related_id))"
                ).format(staging, id=id_sql)
            )
            copy_sql = sql.SQL("COPY {} FROM STDIN").format(staging)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(sql.SQL("ANALYZE {}").format(staging))
            with conn.transaction():
                report = self._apply_staging(layout, id_sql, id_type)
                if outcome is not None:
                    self.finish_run(outcome, report)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Writing {layout.table!r} failed, previous results kept: {self._error(exc)}"
            ) from None
        finally:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
        return report

    def _apply_staging(self, layout: ResultsLayout, id_sql: sql.SQL, id_type: str) -> WriteReport:
        conn = self.conn
        target = table_identifier(layout.table)
        related = sql.Identifier(layout.related_column)
        existing = self._columns_of(layout.table)
        if existing is None:
            # Created only when missing, so a role without CREATE can write a prepared table.
            rank_column = sql.SQL(", rank smallint NOT NULL" if layout.has_rank else "")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (entry_id {id} NOT NULL, {} {id} NOT NULL, "
                    "score double precision NOT NULL{}, PRIMARY KEY (entry_id, {}))"
                ).format(target, related, rank_column, related, id=id_sql)
            )
        else:
            self._check_results_table(layout, existing, id_type)
        staging = sql.Identifier(STAGING)
        same_pair = sql.SQL("t.entry_id = s.entry_id AND t.{} = s.related_id").format(related)
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})").format(
                target, staging, same_pair
            )
        ).rowcount
        if layout.has_rank:
            set_rank = sql.SQL(", rank = s.rank")
            rank_differs = sql.SQL(" OR t.rank IS DISTINCT FROM s.rank")
            rank_value = sql.SQL(", s.rank")
        else:
            set_rank = rank_differs = rank_value = sql.SQL("")
        updated = conn.execute(
            sql.SQL(
                "UPDATE {} AS t SET score = s.score{} FROM {} AS s WHERE {} "
                "AND (t.score IS DISTINCT FROM s.score{})"
            ).format(target, set_rank, staging, same_pair, rank_differs)
        ).rowcount
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO {} ({}) SELECT s.entry_id, s.related_id, s.score{} FROM {} AS s "
                "WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})"
            ).format(
                target,
                sql.SQL(", ").join(map(sql.Identifier, layout.columns)),
                rank_value,
                staging,
                target,
                same_pair,
            )
        ).rowcount
        (total,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()
        return WriteReport(layout.table, inserted, updated, deleted, total)

    def _check_results_table(self, layout: ResultsLayout, columns: list[str], id_type: str) -> None:
        """An existing results table must have our columns, ids of a compatible type, and
        scores stored as double precision (an integer score would silently round)."""
        check_results_columns(columns, repr(layout.table), layout.columns)
        types = dict(
            self.conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (_regclass_name(layout.table),),
            ).fetchall()
        )
        existing = types["entry_id"]
        both_integer = existing in _INTEGER_TYPES and id_type in _INTEGER_TYPES
        if existing != id_type and not both_integer:
            raise SourceError(
                f"Results table {layout.table!r} has entry_id of type {existing}, but the "
                f"source ids are {id_type}; it was not written. Set results_table to a new "
                "name or drop that table so related can create it."
            )
        if types["score"] not in ("double precision", "real", "numeric"):
            raise SourceError(
                f"Results table {layout.table!r} stores score as {types['score']}, which would "
                f"round every score; it was not written. Run: ALTER TABLE {layout.table} "
                "ALTER COLUMN score TYPE double precision"
            )

    # -- the token cache ----------------------------------------------------------------------

    def read_token_cache(self, table: str) -> CachedTokens | None:
        terms_table = token_terms_table(table)
        if self._columns_of(table) is None or self._columns_of(terms_table) is None:
            return None
        try:
            # One snapshot for both tables: a run rewriting the cache meanwhile (dry runs,
            # eval and explain take no lock) must not pair new ids with old terms.
            with (
                self.conn.transaction(),
                self.conn.cursor(name="related_token_cache", binary=True) as cursor,
            ):
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                terms = self.conn.execute(
                    sql.SQL("SELECT term_id, term FROM {} ORDER BY term_id").format(
                        table_identifier(terms_table)
                    )
                ).fetchall()
                # Binary results: bytea arrives as raw bytes instead of hex text to decode.
                cursor.itersize = 5000
                cursor.execute(
                    sql.SQL("SELECT key, term_ids, counts FROM {}").format(table_identifier(table))
                )
                rows = {bytes(key): (bytes(ids), bytes(counts)) for key, ids, counts in cursor}
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Reading the token cache {table!r} failed: {self._error(exc)}"
            ) from None
        return cached_tokens(terms, rows)

    def write_token_cache(self, table: str, update: TokenCacheUpdate) -> None:
        rows, terms = table_identifier(table), table_identifier(token_terms_table(table))
        conn = self.conn
        try:
            with conn.transaction():
                # Created only when missing (CREATE ... IF NOT EXISTS still needs the CREATE
                # privilege), so a role without it can use tables prepared by the owner.
                if self._columns_of(table) is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} (key bytea PRIMARY KEY, term_ids bytea NOT NULL, "
                            "counts bytea NOT NULL)"
                        ).format(rows)
                    )
                if self._columns_of(token_terms_table(table)) is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} (term_id integer PRIMARY KEY, term text NOT NULL)"
                        ).format(terms)
                    )
                if update.rewrite:
                    conn.execute(sql.SQL("DELETE FROM {}").format(rows))
                    conn.execute(sql.SQL("DELETE FROM {}").format(terms))
                elif update.stale_keys:
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(rows),
                        (update.stale_keys,),
                    )
                with conn.cursor() as cur:
                    copy_terms = sql.SQL("COPY {} (term_id, term) FROM STDIN").format(terms)
                    with cur.copy(copy_terms) as copy:
                        for term_row in update.new_terms:
                            copy.write_row(term_row)
                    copy_rows = sql.SQL(
                        "COPY {} (key, term_ids, counts) FROM STDIN (FORMAT BINARY)"
                    ).format(rows)
                    with cur.copy(copy_rows) as copy:
                        copy.set_types(["bytea", "bytea", "bytea"])
                        for row in update.new_rows:
                            copy.write_row(row)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Writing the token cache {table!r} failed: {self._error(exc)}"
            ) from None

    # -- one run at a time, and the run log --------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, results_table: str, run: RunSettings) -> Iterator[None]:
        # A session-level advisory lock: no table is locked, and PostgreSQL releases it if
        # the job dies or its connection drops. Polling (not pg_advisory_lock) keeps every
        # statement short, so statement_timeout never cuts a legitimate wait.
        key = lock_key(results_table)
        acquire_run_lock(
            lambda: self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0],
            results_table,
            run,
        )
        try:
            yield
        finally:
            if not self.conn.closed and not self.conn.broken:
                with contextlib.suppress(psycopg.Error):
                    self.conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _ensure_runs_table(self, runs_table: str) -> None:
        if self._columns_of(runs_table) is None:
            self.conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (run_id bigserial PRIMARY KEY, "
                    "results_table text NOT NULL, started_at timestamptz NOT NULL, "
                    "finished_at timestamptz, status text NOT NULL, entries integer, "
                    "pairs integer, rows_inserted integer, rows_updated integer, "
                    "rows_deleted integer, rows_total integer, settings_fingerprint text, "
                    "input_fingerprint text, version text, message text)"
                ).format(table_identifier(runs_table))
            )

    def start_run(self, runs_table: str, record: RunRecord) -> int:
        self._ensure_runs_table(runs_table)
        table = table_identifier(runs_table)
        self.conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'interrupted' WHERE status = 'running' "
                "AND results_table = %s"
            ).format(table),
            (record.results_table,),
        )
        columns = RUN_COLUMNS[1:]
        (run_id,) = self.conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING run_id").format(
                table,
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            astuple(record)[1:],
        ).fetchone()
        return int(run_id)

    def finish_run(self, outcome: RunOutcome, write: WriteReport | None = None) -> None:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(column)) for column in FINISH_COLUMNS
        )
        self.conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE run_id = %s").format(
                table_identifier(outcome.runs_table), assignments
            ),
            run_outcome_values(outcome, write),
        )

    def list_runs(
        self, runs_table: str, *, limit: int = 20, results_table: str | None = None
    ) -> list[RunRecord]:
        if self._columns_of(runs_table) is None:
            return []
        where = sql.SQL("WHERE results_table = %s" if results_table else "")
        params = (results_table, limit) if results_table else (limit,)
        rows = self.conn.execute(
            sql.SQL("SELECT {} FROM {} {} ORDER BY run_id DESC LIMIT %s").format(
                sql.SQL(", ").join(map(sql.Identifier, RUN_COLUMNS)),
                table_identifier(runs_table),
                where,
            ),
            params,
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
        custom = self.source_query(source)
        if custom:
            titles = sql.SQL("({})").format(sql.SQL(custom))
        else:
            titles = sql.SQL("(SELECT {} AS id, {} AS title FROM {})").format(
                sql.Identifier(source.id_column),
                sql.Identifier(source.title_column),
                table_identifier(source.source_table),
            )
        related = sql.Identifier(layout.related_column)
        order = sql.SQL("r.rank" if layout.has_rank else "r.score DESC")
        try:
            # The id arrives as text; psycopg sends str untyped, so PostgreSQL casts it to the
            # column's type (and rejects "abc" for an integer column with a clear error).
            own = self.conn.execute(
                sql.SQL("SELECT title FROM {} AS s WHERE s.id = %s").format(titles), (entry_id,)
            ).fetchone()
            rows = self.conn.execute(
                sql.SQL(
                    "SELECT r.{}, s.title, r.score FROM {} AS r "
                    "LEFT JOIN {} AS s ON s.id = r.{} "
                    "WHERE r.entry_id = %s ORDER BY {}, r.{}"
                ).format(related, table_identifier(layout.table), titles, related, order, related),
                (entry_id,),
            ).fetchall()
        except psycopg.errors.DataError as exc:
            raise SourceError(f"Entry id {entry_id!r}: {self._error(exc)}") from None
        neighbours = [
            StoredNeighbour(rid, title, score, rank)
            for rank, (rid, title, score) in enumerate(rows, start=1)
        ]
        return (own[0] if own else None), neighbours
