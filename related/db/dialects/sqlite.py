"""SQLite through the stdlib sqlite3 module (the embedded default).

What differs: double-quoted names, ``?`` placeholders, types are affinities (an INTEGER
column keeps 0.5), ``IS NOT`` is the null-safe comparison, DDL is transactional, bulk loads
are executemany inside one transaction, and the run lock is an flock on a file beside the
database (SQLite has no advisory locks; the OS frees it if the process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any
from urllib.parse import quote

from related.config import RunSettings
from related.db.dialects import Dialect, Streamed
from related.db.errors import Problem
from related.db.urls import mask_url, sqlite_path
from related.errors import ConfigError, DatabaseError, SourceError


def _decode_text(raw: bytes) -> str:
    # Invalid UTF-8 in a TEXT column would abort the read; replace the bad bytes instead.
    return raw.decode("utf-8", errors="replace")


def _param(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class SQLiteDialect(Dialect):
    name = "sqlite"
    placeholder = "?"
    driver_errors = (sqlite3.Error,)
    integer_columns_round = False

    def __init__(self, url: str, run: RunSettings):
        super().__init__(url, run)
        self.path = sqlite_path(url)
        if not self.path.exists():
            raise SourceError(
                f"SQLite database {self.path} does not exist ({mask_url(url)}). Check "
                "DATABASE_URL: sqlite:///relative.db is relative to the working directory, "
                "sqlite:////absolute.db is absolute."
            )
        self._deadline = float("inf")
        # sqlite:///blog.db?mode=ro: the URL's query goes to SQLite as URI parameters.
        query = url.partition("?")[2]
        target = f"file:{quote(str(self.path))}?{query}" if query else str(self.path)
        try:
            # isolation_level=None: autocommit; transactions are explicit (transaction()).
            self.conn = sqlite3.connect(
                target, isolation_level=None, timeout=run.db_lock_timeout, uri=bool(query)
            )
            self.conn.text_factory = _decode_text
            if run.statement_timeout:
                # SQLite has no statement timeout: a progress handler aborts a statement that
                # runs past it (checked every 10,000 virtual machine steps).
                self.conn.set_progress_handler(self._past_deadline, 10_000)
            # Fails now, not halfway, when the file is not a database.
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            if self.classify(exc) is Problem.NOT_A_DATABASE:
                raise ConfigError(
                    f"{self.path} is not a SQLite database ({exc}). Check DATABASE_URL."
                ) from None
            raise DatabaseError(f"Cannot open SQLite database {self.path}: {exc}.") from None
        self._locks: dict[str, IO[bytes]] = {}

    def recover(self) -> None:
        # After Ctrl-C the run's outcome is recorded if the file is free within a second; the
        # user asked to stop, and the next run marks a run left 'running' as interrupted.
        self.conn.execute("PRAGMA busy_timeout = 1000")

    def _past_deadline(self) -> bool:
        return time.monotonic() > self._deadline

    def _started(self) -> None:
        self._deadline = time.monotonic() + (self.run.statement_timeout or float("inf"))

    def close(self) -> None:
        for handle in self._locks.values():
            handle.close()
        self.conn.close()

    # -- names and types ---------------------------------------------------------------------

    def quote_part(self, part: str) -> str:
        return '"' + part.replace('"', '""') + '"'

    _TYPES = {
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "integer": "INTEGER",
        "rank": "INTEGER",
        "score": "REAL",
        "text": "TEXT",
        "timestamp": "TEXT",
        "key": "BLOB",
        "blob": "BLOB",
    }

    def type_name(self, kind: str, id_type: str) -> str:
        return id_type if kind == "id" else self._TYPES[kind]

    def kind_of(self, declared: str) -> str:
        # SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1), in their order.
        upper = declared.upper()
        if "INT" in upper:
            return "integer"
        if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
            return "text"
        if "BLOB" in upper or not upper:
            return "blob"
        if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
            return "score"
        return "numeric"

    def fix_column_type(self, table: str, column: str, type_name: str) -> str:
        return (
            f"SQLite cannot change a column's type: rename {table} and let related create it "
            f"again, with {column} {type_name}"
        )

    # -- catalog -----------------------------------------------------------------------------

    def table_columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        if schema:
            rows = self.conn.execute(
                "SELECT name, type FROM pragma_table_info(?, ?)", (name, schema)
            ).fetchall()
        else:
            rows = self.conn.execute("SELECT name, type FROM pragma_table_info(?)", (name,))
            rows = rows.fetchall()
        return {column: declared.lower() for column, declared in rows} if rows else None

    # -- statements --------------------------------------------------------------------------

    def delete_keys(self, table: str, column: str, keys: Sequence[Any]) -> None:
        self._started()
        self.conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(k,) for k in keys])

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        self._started()
        return self.conn.execute(statement, tuple(map(_param, params))).rowcount

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._started()
        return self.conn.execute(statement, tuple(map(_param, params))).fetchall()

    def insert_returning_id(self, statement: str, params: Sequence[Any], column: str) -> int:
        self._started()
        return int(self.conn.execute(statement, tuple(map(_param, params))).lastrowid)

    @contextlib.contextmanager
    def stream(
        self, statement: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Iterator[Streamed]:
        self._started()
        cursor = self.conn.execute(statement, tuple(params))
        try:
            columns = [d[0].lower() for d in cursor.description or ()]
            yield Streamed(columns, cursor, cursor.description)
        finally:
            cursor.close()

    def id_type(self, ids: Sequence[Any], description: Any) -> str:
        return "INTEGER" if ids and all(isinstance(i, int) for i in ids) else "TEXT"

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        self._started()
        if self.conn.in_transaction:
            self.conn.executemany(statement, rows)
            return
        # Outside a transaction each row would be its own commit.
        with self.transaction(immediate=False):
            self.conn.executemany(statement, rows)

    def is_distinct(self, a: str, b: str) -> str:
        return f"{a} IS NOT {b}"

    def drop_temporary(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS temp.{self.quote_part(name)}"

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[None]:
        try:
            if immediate:
                self._begin_immediate()
            else:
                self._started()
                self.conn.execute("BEGIN")
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self._started()
        self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        """BEGIN IMMEDIATE takes the write lock now, so a second writer waits here instead of
        failing halfway; readers keep the old rows until COMMIT. The wait (up to
        db_lock_timeout) is polled here, not in SQLite's busy handler, so Ctrl-C ends it at
        once."""
        deadline = time.monotonic() + self.run.db_lock_timeout
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.02)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.run.db_lock_timeout * 1000)}")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self._started()
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self._started()
            self.conn.execute("COMMIT")

    # -- one run at a time -------------------------------------------------------------------

    def try_lock(self, results_table: str) -> bool:
        handle = self._locks.get(results_table)
        if handle is None:
            # The file stays after the run: unlinking it would let a third process lock a
            # new file while a second one still waits on the old one.
            handle = self._locks[results_table] = open(  # noqa: SIM115 (held until unlock)
                f"{self.path}.related-{results_table}.lock", "a+b"
            )
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(self, results_table: str) -> None:
        handle = self._locks.pop(results_table, None)
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # -- errors ------------------------------------------------------------------------------

    def classify(self, exc: BaseException) -> Problem:
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text:
            return Problem.READ_ONLY
        if "not a database" in text or "file is encrypted" in text:
            return Problem.NOT_A_DATABASE
        if text == "interrupted":  # by the progress handler: statement_timeout
            return Problem.STATEMENT_TIMEOUT
        if "database is locked" in text or "database table is locked" in text:
            return Problem.LOCK_TIMEOUT
        if "unable to open" in text or "disk i/o" in text:
            return Problem.CONNECTION_LOST
        if "no such" in text or "syntax error" in text:
            return Problem.QUERY
        return Problem.OTHER
