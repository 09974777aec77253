"""MySQL and MariaDB through PyMySQL (a pure-Python wheel: no compiler, no client library).

What differs: backtick-quoted names, ``%s`` placeholders, ``<=>`` as the null-safe
comparison, ``UPDATE t JOIN s ON ... SET``, multi-row INSERTs for bulk loads (PyMySQL's
executemany packs rows into statements of up to ~1 MB, below any max_allowed_packet), an
unbuffered cursor for streaming reads, ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` for the
token cache, GET_LOCK for the run lock (freed by the server if the connection dies), InnoDB
and utf8mb4 for every table the job creates, errors by error number.

DDL commits implicitly on MySQL, so the store never runs any inside a transaction; a results
table on an engine without transactions (MyISAM) is refused, since readers could see a half
published list there.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pymysql
import pymysql.cursors

from related.config import RunSettings
from related.db.dialects import Dialect, Streamed, iter_blocks
from related.db.errors import Problem
from related.db.urls import mysql_target, scrub
from related.errors import DatabaseError, SourceError

_TYPES = {
    "serial": "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
    "integer": "INT",
    "rank": "SMALLINT",
    "score": "DOUBLE",
    "text": "TEXT",
    "timestamp": "DATETIME(6)",
    "key": "VARBINARY(32)",
    "blob": "LONGBLOB",
}
_KIND_PREFIXES = (
    (("tinyint", "smallint", "mediumint", "int", "bigint"), "integer"),
    (("varchar", "char", "tinytext", "text", "mediumtext", "longtext"), "text"),
    (("double", "float", "real"), "score"),
    (("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), "blob"),
    (("datetime", "timestamp"), "timestamp"),
)
# Text ids become VARCHAR(255): two of them (the primary key) stay below InnoDB's 3072-byte
# key limit in utf8mb4.
_MAX_TEXT_ID = 255
_PROBLEMS = {
    1290: Problem.READ_ONLY,  # --read-only / super_read_only
    1792: Problem.READ_ONLY,  # read-only transaction
    1836: Problem.READ_ONLY,  # read-only mode
    1969: Problem.STATEMENT_TIMEOUT,  # MariaDB max_statement_time
    3024: Problem.STATEMENT_TIMEOUT,  # MySQL max_execution_time
    1205: Problem.LOCK_TIMEOUT,  # innodb_lock_wait_timeout
    1213: Problem.LOCK_TIMEOUT,  # deadlock: retrying is the fix too
    2003: Problem.CONNECTION_LOST,
    2006: Problem.CONNECTION_LOST,
    2013: Problem.CONNECTION_LOST,
    2055: Problem.CONNECTION_LOST,
    1927: Problem.CONNECTION_LOST,  # connection killed
    1044: Problem.PERMISSION,
    1045: Problem.PERMISSION,
    1142: Problem.PERMISSION,
    1143: Problem.PERMISSION,
    1227: Problem.PERMISSION,
    1366: Problem.ENCODING,  # incorrect string value
    1300: Problem.ENCODING,
}
_BLOCK = 1000  # keys per DELETE ... IN (...)


_STATEMENT_BYTES = 1_000_000


def _literal_or(literal: Any) -> Any:
    """A row value as SQL: ints and finite floats as written by Python (``repr`` of a float
    reads back as the same double), anything else through the driver's escaping."""

    def to_sql(value: Any) -> str:
        kind = type(value)
        if kind is int:
            return str(value)
        if kind is float and value == value and abs(value) != float("inf"):
            return repr(value)
        return str(literal(value))

    return to_sql


def _param(value: Any) -> Any:
    # DATETIME has no time zone: the job's timestamps are stored as UTC.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


class MySQLDialect(Dialect):
    name = "mysql"
    placeholder = "%s"
    # UnicodeError: text that does not fit the connection's encoding, on either side.
    driver_errors = (pymysql.err.MySQLError, UnicodeError)
    table_options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    # information_schema lists only the tables a user may use.
    missing_table_hint = " (or the job's user has no SELECT on it: MySQL hides such tables)"

    def __init__(self, url: str, run: RunSettings):
        super().__init__(url, run)
        self.target = mysql_target(url)
        self.database = self.target.database
        self._connect()

    def _connect(self) -> None:
        try:
            self.conn = pymysql.connect(
                database=self.target.database,
                charset="utf8mb4",
                autocommit=True,  # transactions are explicit (transaction())
                **self.target.connect_args,
            )
        except pymysql.err.MySQLError as exc:
            raise DatabaseError(
                f"Cannot connect to {self.display_url}: {scrub(self.describe(exc), self.url)}"
            ) from None
        version = str(self.query("SELECT VERSION()")[0][0])
        self.mariadb = "mariadb" in version.lower()
        self._set_session(self.run)

    def recover(self) -> None:
        # Ctrl-C inside PyMySQL's read of a reply leaves the protocol out of step: nothing more
        # can be said on that connection. Closing it makes the server roll back whatever it
        # had open; a new one can record how the run ended.
        with contextlib.suppress(Exception):
            self.conn.close()
        self._connect()

    def _set_session(self, run: RunSettings) -> None:
        # MySQL 8 cuts GROUP_CONCAT (the wordpress preset's tags) at 1,024 bytes by default,
        # with only a warning; MariaDB at 1 MB. Neither is a limit the job wants.
        self.execute("SET SESSION group_concat_max_len = %s", (2**32 - 1,))
        # Row locks (InnoDB) and table/metadata locks: whole seconds, at least 1; 0 = no limit.
        lock_wait = max(1, round(run.db_lock_timeout)) if run.db_lock_timeout else 31_536_000
        self.execute("SET SESSION innodb_lock_wait_timeout = %s", (lock_wait,))
        self.execute("SET SESSION lock_wait_timeout = %s", (lock_wait,))
        if self.mariadb:
            # Every statement, in seconds (0 = none).
            self.execute("SET SESSION max_statement_time = %s", (run.statement_timeout,))
        else:
            # MySQL bounds read-only SELECTs only, in milliseconds.
            self.execute(
                "SET SESSION max_execution_time = %s", (int(run.statement_timeout * 1000),)
            )

    def close(self) -> None:
        self.conn.close()

    @property
    def usable(self) -> bool:
        return bool(self.conn.open)

    # -- names and types ---------------------------------------------------------------------

    def quote_part(self, part: str) -> str:
        return "`" + part.replace("`", "``") + "`"

    def type_name(self, kind: str, id_type: str) -> str:
        return id_type if kind == "id" else _TYPES[kind]

    def kind_of(self, declared: str) -> str:
        base = declared.lower().split("(")[0].split()[0] if declared.strip() else ""
        for prefixes, kind in _KIND_PREFIXES:
            if base in prefixes:
                return kind
        return base  # decimal, enum, json...: not one of ours

    def fix_column_type(self, table: str, column: str, type_name: str) -> str:
        return f"ALTER TABLE {table} MODIFY {column} {type_name} NOT NULL"

    def refuses_transactions(self, table: str) -> str | None:
        schema, name = self._schema_and_name(table)
        rows = self.query(
            "SELECT engine FROM information_schema.tables "
            "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s",
            (schema, name),
        )
        engine = rows[0][0] if rows else None
        if engine is None or str(engine).lower() == "innodb":  # a view has no engine
            return None
        return f"ALTER TABLE {table} ENGINE=InnoDB"

    # -- catalog -----------------------------------------------------------------------------

    @staticmethod
    def _schema_and_name(table: str) -> tuple[str | None, str]:
        schema, _, name = table.rpartition(".")
        return (schema or None), name

    def table_columns(self, table: str) -> dict[str, str] | None:
        schema, name = self._schema_and_name(table)
        rows = self.query(
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s "
            "ORDER BY ordinal_position",
            (schema, name),
        )
        return {str(column): str(declared).lower() for column, declared in rows} or None

    # -- statements --------------------------------------------------------------------------

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cursor:
            return int(cursor.execute(statement, tuple(map(_param, params))))

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(statement, tuple(map(_param, params)))
            return list(cursor.fetchall())

    def insert_returning_id(self, statement: str, params: Sequence[Any], column: str) -> int:
        with self.conn.cursor() as cursor:
            cursor.execute(statement, tuple(map(_param, params)))
            return int(cursor.lastrowid)

    @contextlib.contextmanager
    def stream(
        self, statement: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Iterator[Streamed]:
        # Unbuffered: rows are read from the socket as they are used, not all at once.
        with self.conn.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(statement, tuple(params))
            columns = [d[0].lower() for d in cursor.description or ()]
            yield Streamed(columns, iter(cursor.fetchone, None), cursor.description)

    def id_type(self, ids: Sequence[Any], description: Any) -> str:
        if ids and all(isinstance(i, int) for i in ids):
            return "BIGINT UNSIGNED" if max(ids) > 2**63 - 1 else "BIGINT"
        longest = max(ids, key=lambda i: len(str(i)))
        if len(str(longest)) > _MAX_TEXT_ID:
            raise SourceError(
                f"Entry id {str(longest)[:40]!r}... is longer than {_MAX_TEXT_ID} characters, "
                "too long for a key on MySQL. Use a shorter id (the numeric one, or a slug)."
            )
        return f"VARCHAR({_MAX_TEXT_ID})"

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        # Multi-row INSERTs of about 1 MB, well below the servers' default max_allowed_packet.
        # PyMySQL always interpolates parameters on the client; doing it here with its own
        # escaping, but numbers written directly, saves most of its per-value work
        # (bench/README.md, "Database stages by backend").
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        literal = self.conn.escape
        with self.conn.cursor() as cursor:
            values: list[str] = []
            size = 0
            for row in rows:
                value = "(" + ",".join(map(_literal_or(literal), row)) + ")"
                values.append(value)
                size += len(value) + 1
                if size >= _STATEMENT_BYTES:
                    cursor.execute(head + ",".join(values))
                    values, size = [], 0
            if values:
                cursor.execute(head + ",".join(values))

    def delete_keys(self, table: str, column: str, keys: Sequence[Any]) -> None:
        with self.conn.cursor() as cursor:
            for block in iter_blocks(((k,) for k in keys), _BLOCK):
                marks = ", ".join(["%s"] * len(block))
                cursor.execute(
                    f"DELETE FROM {table} WHERE {column} IN ({marks})", [k for (k,) in block]
                )

    def update_from(
        self, target: str, staging: str, assignments: Sequence[str], on: str, where: str
    ) -> str:
        sets = ", ".join(f"t.{a} = s.{a}" for a in assignments)
        return f"UPDATE {target} AS t JOIN {staging} AS s ON {on} SET {sets} WHERE {where}"

    def is_distinct(self, a: str, b: str) -> str:
        return f"NOT ({a} <=> {b})"

    def drop_temporary(self, name: str) -> str:
        return f"DROP TEMPORARY TABLE IF EXISTS {self.quote_part(name)}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self.execute("START TRANSACTION")
            yield
        except KeyboardInterrupt:
            # A ROLLBACK would first wait for the reply of the interrupted statement (up to
            # db_lock_timeout if it waits on a lock); closing rolls back without the wait.
            with contextlib.suppress(Exception):
                self.conn.close()
            raise
        except BaseException:
            if self.usable:
                with contextlib.suppress(pymysql.err.MySQLError):
                    self.conn.rollback()
            raise
        self.conn.commit()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            yield
        finally:
            if self.usable:
                self.conn.commit()

    # -- one run at a time -------------------------------------------------------------------

    def _lock_name(self, results_table: str) -> str:
        # Lock names are server-wide: the database is part of the name (at most 64 characters).
        digest = hashlib.sha256(f"{self.database}/{results_table}".encode()).hexdigest()
        return f"related:{digest[:48]}"

    def try_lock(self, results_table: str) -> bool:
        (got,) = self.query("SELECT GET_LOCK(%s, 0)", (self._lock_name(results_table),))[0]
        return got == 1

    def unlock(self, results_table: str) -> None:
        self.query("SELECT RELEASE_LOCK(%s)", (self._lock_name(results_table),))

    # -- errors ------------------------------------------------------------------------------

    @staticmethod
    def describe(exc: BaseException) -> str:
        if len(exc.args) >= 2 and isinstance(exc.args[0], int):
            text = exc.args[1] or "no reply from the server"
            return f"{text} (MySQL error {exc.args[0]})"
        return str(exc) or type(exc).__name__

    def classify(self, exc: BaseException) -> Problem:
        number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if number in _PROBLEMS:
            return _PROBLEMS[number]
        if isinstance(exc, UnicodeError):
            return Problem.ENCODING
        if isinstance(exc, pymysql.err.InterfaceError) or not self.usable:
            return Problem.CONNECTION_LOST
        if isinstance(exc, pymysql.err.ProgrammingError | pymysql.err.DataError):
            return Problem.QUERY
        if isinstance(exc, pymysql.err.InternalError | pymysql.err.OperationalError) and (
            number in (1054, 1146, 1049, 1064, 1052, 1066, 1267, 1305)
        ):
            return Problem.QUERY
        return Problem.OTHER
