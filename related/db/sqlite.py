"""SQLite through the stdlib sqlite3 module (the embedded default)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence

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
    mask_url,
    sqlite_path,
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
    def __init__(self, url: str, *, create: bool = False):
        self.url = url
        path = sqlite_path(url)
        if not create and not path.exists():
            raise SourceError(
                f"SQLite database {path} does not exist ({mask_url(url)}). Check DATABASE_URL: "
                "sqlite:///relative.db is relative to the working directory, "
                "sqlite:////absolute.db is absolute."
            )
        try:
            # isolation_level=None: autocommit; the one write transaction is explicit below.
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise DatabaseError(f"Cannot open SQLite database {path}: {exc}.") from None
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
        if source.source_query:
            label = "source_query"
            try:
                cursor = self.conn.execute(source.source_query)
            except sqlite3.Error as exc:
                raise SourceError(f"source_query failed: {exc}. Fix the query.") from None
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
            query = f"SELECT {select} FROM {quote(source.source_table)}"
            if source.source_where:
                query += f" WHERE ({source.source_where})"
            try:
                cursor = self.conn.execute(query)
            except sqlite3.Error as exc:
                raise SourceError(f"Reading {label} failed: {exc}. Check source_where.") from None
            columns = [canon for _, canon in pairs]
        rows = cursor.fetchall()
        id_type = (
            "INTEGER"
            if rows and all(isinstance(r[columns.index("id")], int) for r in rows)
            else "TEXT"
        )
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
        validate_identifier(results_table, "results_table", qualified=True)
        target = quote(results_table)
        conn = self.conn
        try:
            conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
            conn.execute(
                f"CREATE TABLE {STAGING} (entry_id {id_type} NOT NULL, "
                f"related_entry_id {id_type} NOT NULL, score REAL NOT NULL, "
                "rank INTEGER NOT NULL, PRIMARY KEY (entry_id, related_entry_id))"
            )
            # BEGIN IMMEDIATE takes the write lock now, so a second writer waits here instead
            # of failing halfway; readers keep seeing the old rows until COMMIT.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    f"INSERT INTO {STAGING} VALUES (?, ?, ?, ?)",
                    ((r.entry_id, r.related_entry_id, r.score, r.rank) for r in rows),
                )
                report = self._apply_staging(target, results_table, id_type)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"Writing {results_table!r} failed, previous results kept: {exc}."
            ) from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
        return report

    def _apply_staging(self, target: str, results_table: str, id_type: str) -> WriteReport:
        conn = self.conn
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {target} ("
            f"entry_id {id_type} NOT NULL, related_entry_id {id_type} NOT NULL, "
            "score REAL NOT NULL, rank INTEGER NOT NULL, "
            "PRIMARY KEY (entry_id, related_entry_id))"
        )
        check_results_columns(self._columns_of(results_table) or [], repr(results_table))
        same_pair = "t.entry_id = s.entry_id AND t.related_entry_id = s.related_entry_id"
        deleted = conn.execute(
            f"DELETE FROM {target} AS t WHERE NOT EXISTS "
            f"(SELECT 1 FROM {STAGING} AS s WHERE {same_pair})"
        ).rowcount
        updated = conn.execute(
            f"UPDATE {target} AS t SET score = s.score, rank = s.rank FROM {STAGING} AS s "
            f"WHERE {same_pair} AND (t.score IS NOT s.score OR t.rank IS NOT s.rank)"
        ).rowcount
        inserted = conn.execute(
            f"INSERT INTO {target} (entry_id, related_entry_id, score, rank) "
            f"SELECT entry_id, related_entry_id, score, rank FROM {STAGING} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {same_pair})"
        ).rowcount
        (total,) = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
        return WriteReport(results_table, inserted, updated, deleted, total)

    # -- show ---------------------------------------------------------------------------------

    def read_neighbours(
        self, entry_id: str, *, results_table: str, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        columns = self._columns_of(results_table)
        if columns is None:
            raise SourceError(
                f"Results table {results_table!r} does not exist yet. Run `related run` first."
            )
        key: int | str = entry_id
        declared = self.conn.execute(
            f"SELECT type FROM pragma_table_info({quote(results_table.split('.')[-1])!r}) "
            "WHERE name = 'entry_id'"
        ).fetchone()
        if declared and "INT" in declared[0].upper():
            try:
                key = int(entry_id)
            except ValueError:
                raise SourceError(f"Entry id {entry_id!r} is not an integer.") from None
        titles = self._titles_relation(source)
        own = self.conn.execute(
            f"SELECT title FROM {titles} AS s WHERE s.id = ?", (key,)
        ).fetchone()
        rows = self.conn.execute(
            f"SELECT r.related_entry_id, s.title, r.score, r.rank FROM {quote(results_table)} AS r "
            f"LEFT JOIN {titles} AS s ON s.id = r.related_entry_id "
            "WHERE r.entry_id = ? ORDER BY r.rank",
            (key,),
        ).fetchall()
        return (own[0] if own else None), [StoredNeighbour(*row) for row in rows]

    def _titles_relation(self, source: SourceSettings) -> str:
        if source.source_query:
            return f"({source.source_query})"
        return (
            f"(SELECT {quote(source.id_column)} AS id, {quote(source.title_column)} AS title "
            f"FROM {quote(source.source_table)})"
        )
