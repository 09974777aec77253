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
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from related.config import SourceSettings, validate_identifier
from related.db import (
    Database,
    ResultRow,
    StoredNeighbour,
    WriteReport,
    check_query_columns,
    check_results_columns,
    check_source_columns,
    entry_select_columns,
    scrub,
)
from related.entries import Entries, entries_from_rows
from related.errors import ConfigError, DatabaseError, SourceError

STAGING = "related_staging"
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9 _]*(\(\d+(,\d+)?\))?$")


def table_identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*validate_identifier(name, "table", qualified=True))


class PostgresDatabase(Database):
    def __init__(self, url: str):
        self.url = url
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"Bad PostgreSQL URL {self.display_url!r}: {scrub(str(exc), url)}"
            ) from None
        # Every libpq parameter in the URL passes through untouched; we only fill gaps.
        extra = {}
        if "application_name" not in params:
            extra["application_name"] = "related"
        if "connect_timeout" not in params:
            extra["connect_timeout"] = 10
        try:
            self.conn = psycopg.connect(url, autocommit=True, **extra)
        except psycopg.Error as exc:
            first_line = (
                scrub(str(exc), url).strip().splitlines()[0] if str(exc) else type(exc).__name__
            )
            raise DatabaseError(f"Cannot connect to {self.display_url}: {first_line}") from None

    def close(self) -> None:
        self.conn.close()

    def _error(self, exc: Exception) -> str:
        return scrub(
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.url
        )

    # -- reading ------------------------------------------------------------------------------

    def _columns_of(self, table: str) -> list[str] | None:
        try:
            cursor = self.conn.execute(
                sql.SQL("SELECT * FROM {} LIMIT 0").format(table_identifier(table))
            )
        except psycopg.errors.UndefinedTable:
            return None
        except psycopg.Error as exc:
            raise DatabaseError(f"Cannot read table {table!r}: {self._error(exc)}") from None
        return [c.name for c in cursor.description or ()]

    def _type_name(self, oid: int) -> str:
        (name,) = self.conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
        if not _TYPE_NAME.match(name):
            raise SourceError(f"Entry ids have the unsupported type {name!r}. Cast them to text.")
        return name

    def read_entries(self, source: SourceSettings) -> Entries:
        if source.source_query:
            label = "source_query"
            query: sql.Composable = sql.SQL(source.source_query)  # trusted configuration
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
            cursor = self.conn.execute(query)
            rows = cursor.fetchall()
        except psycopg.errors.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise DatabaseError(f"Reading {label} failed: {self._error(exc)}") from None
            raise SourceError(
                f"Reading {label} failed: {self._error(exc)}. Check the query."
            ) from None
        columns = [c.name.lower() for c in cursor.description or ()]
        check_query_columns(columns)
        id_type = self._type_name(cursor.description[columns.index("id")].type_code)
        return entries_from_rows(
            rows,
            columns=columns,
            id_type=id_type,
            tags_separator=source.tags_separator,
            source_name=label,
        )

    # -- writing ------------------------------------------------------------------------------

    def write_results(
        self, rows: Sequence[ResultRow], *, results_table: str, id_type: str
    ) -> WriteReport:
        target = table_identifier(results_table)
        staging = sql.Identifier(STAGING)
        id_sql = sql.SQL(id_type)  # from format_type(), checked by _TYPE_NAME
        conn = self.conn
        try:
            # Staging outside the swap transaction: the COPY may take a while, the swap not.
            conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} (entry_id {id} NOT NULL, related_entry_id {id} NOT NULL,"
                    " score double precision NOT NULL, rank smallint NOT NULL,"
                    " PRIMARY KEY (entry_id, related_entry_id))"
                ).format(staging, id=id_sql)
            )
            copy_sql = sql.SQL("COPY {} FROM STDIN").format(staging)
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for r in rows:
                    copy.write_row((r.entry_id, r.related_entry_id, r.score, r.rank))
            conn.execute(sql.SQL("ANALYZE {}").format(staging))
            with conn.transaction():
                report = self._apply_staging(target, results_table, id_sql, id_type)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"Writing {results_table!r} failed, previous results kept: {self._error(exc)}"
            ) from None
        finally:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
        return report

    def _apply_staging(
        self, target: sql.Identifier, results_table: str, id_sql: sql.SQL, id_type: str
    ) -> WriteReport:
        conn = self.conn
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (entry_id {id} NOT NULL, "
                "related_entry_id {id} NOT NULL, score double precision NOT NULL, "
                "rank smallint NOT NULL, PRIMARY KEY (entry_id, related_entry_id))"
            ).format(target, id=id_sql)
        )
        self._check_results_table(results_table, id_type)
        staging = sql.Identifier(STAGING)
        same_pair = sql.SQL("t.entry_id = s.entry_id AND t.related_entry_id = s.related_entry_id")
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})").format(
                target, staging, same_pair
            )
        ).rowcount
        updated = conn.execute(
            sql.SQL(
                "UPDATE {} AS t SET score = s.score, rank = s.rank FROM {} AS s WHERE {} "
                "AND (t.score IS DISTINCT FROM s.score OR t.rank IS DISTINCT FROM s.rank)"
            ).format(target, staging, same_pair)
        ).rowcount
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO {} (entry_id, related_entry_id, score, rank) "
                "SELECT entry_id, related_entry_id, score, rank FROM {} AS s "
                "WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})"
            ).format(target, staging, target, same_pair)
        ).rowcount
        (total,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()
        return WriteReport(results_table, inserted, updated, deleted, total)

    def _check_results_table(self, results_table: str, id_type: str) -> None:
        """An existing results table must have our columns, with ids of a compatible type."""
        columns = self._columns_of(results_table) or []
        check_results_columns(columns, repr(results_table))
        (existing,) = self.conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'entry_id'",
            (".".join(validate_identifier(results_table, "results_table", qualified=True)),),
        ).fetchone()
        both_integer = existing in _INTEGER_TYPES and id_type in _INTEGER_TYPES
        if existing != id_type and not both_integer:
            raise SourceError(
                f"Results table {results_table!r} has entry_id of type {existing}, but the source "
                f"ids are {id_type}; it was not written. Set results_table to a new name or "
                "drop that table so related can create it."
            )

    # -- show ---------------------------------------------------------------------------------

    def read_neighbours(
        self, entry_id: str, *, results_table: str, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        if self._columns_of(results_table) is None:
            raise SourceError(
                f"Results table {results_table!r} does not exist yet. Run `related run` first."
            )
        if source.source_query:
            titles = sql.SQL("({})").format(sql.SQL(source.source_query))
        else:
            titles = sql.SQL("(SELECT {} AS id, {} AS title FROM {})").format(
                sql.Identifier(source.id_column),
                sql.Identifier(source.title_column),
                table_identifier(source.source_table),
            )
        target = table_identifier(results_table)
        try:
            # The id arrives as text; psycopg sends str untyped, so PostgreSQL casts it to the
            # column's type (and rejects "abc" for an integer column with a clear error).
            own = self.conn.execute(
                sql.SQL("SELECT title FROM {} AS s WHERE s.id = %s").format(titles), (entry_id,)
            ).fetchone()
            rows = self.conn.execute(
                sql.SQL(
                    "SELECT r.related_entry_id, s.title, r.score, r.rank FROM {} AS r "
                    "LEFT JOIN {} AS s ON s.id = r.related_entry_id "
                    "WHERE r.entry_id = %s ORDER BY r.rank"
                ).format(target, titles),
                (entry_id,),
            ).fetchall()
        except psycopg.errors.DataError as exc:
            raise SourceError(f"Entry id {entry_id!r}: {self._error(exc)}") from None
        return (own[0] if own else None), [StoredNeighbour(*row) for row in rows]
