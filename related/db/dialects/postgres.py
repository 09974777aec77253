"""PostgreSQL through psycopg 3, a production target.

What differs: names quoted by psycopg's ``sql.Identifier``, ``%s`` placeholders, COPY for bulk
loads (binary for the token cache's bytea), ``= ANY(%s)`` deletes, a server-side cursor for
streaming reads, REPEATABLE READ snapshots, session-level advisory locks (released if the
job dies or its connection drops), ``format_type`` for type names, errors by SQLSTATE.

The connection is in autocommit: reading and the long tokenising stages never hold a
transaction open ("idle in transaction"); nothing takes more than ROW EXCLUSIVE on the
results table (no TRUNCATE, no table swap).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import StrDumperUnknown

from related.config import RunSettings
from related.db import lock_key
from related.db.dialects import Dialect, Streamed
from related.db.errors import Problem
from related.db.urls import scrub
from related.errors import ConfigError, DatabaseError, SourceError

_PLACEHOLDER = re.compile(rb"%(s|%)")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9 _]*(\(\d+(,\d+)?\))?$")
_TYPES = {
    "serial": "bigserial PRIMARY KEY",
    "integer": "integer",
    "rank": "smallint",
    "score": "double precision",
    "text": "text",
    "timestamp": "timestamptz",
    "key": "bytea",
    "blob": "bytea",
}
_KINDS = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "text": "text",
    "double precision": "score",
    "real": "score",
    "numeric": "score",  # without a scale it keeps every digit
    "bytea": "blob",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp",
}
# SQLSTATE (or its class, the first two characters) -> Problem.
_PROBLEMS = {
    "25006": Problem.READ_ONLY,
    "57014": Problem.STATEMENT_TIMEOUT,
    "55P03": Problem.LOCK_TIMEOUT,
    "40P01": Problem.LOCK_TIMEOUT,  # deadlock: retrying is the fix too
    "42501": Problem.PERMISSION,
    "22021": Problem.ENCODING,
    "22P05": Problem.ENCODING,
    "08": Problem.CONNECTION_LOST,
    "57P": Problem.CONNECTION_LOST,  # admin shutdown, crash shutdown
    "42": Problem.QUERY,  # syntax error or access rule violation (undefined table, column...)
    "22": Problem.QUERY,  # data exception: "abc" for an integer id, division by zero...
}


class _Utf8Text(Loader):
    """Text from a SQL_ASCII database: psycopg would hand over bytes; blogs stored UTF-8."""

    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8", errors="replace")


def set_in_options(options: str) -> set[str]:
    """The settings a libpq ``options`` string sets: ``-c name=value``, ``-cname=value``
    or ``--name=value`` (names are case-insensitive; dashes in them mean underscores)."""
    found = re.findall(r"(?:^|\s)(?:-c\s*|--)([A-Za-z0-9_.-]+)=", options)
    return {name.lower().replace("-", "_") for name in found}


class _Utf8Str(StrDumperUnknown):
    """Text parameters to a SQL_ASCII database, as UTF-8 (psycopg would allow ASCII only)."""

    def dump(self, obj: str) -> bytes:
        return obj.encode("utf-8")


class PostgresDialect(Dialect):
    name = "postgresql"
    placeholder = "%s"
    # UnicodeError: text that does not fit the connection's encoding, on either side.
    driver_errors = (psycopg.Error, UnicodeError)

    def __init__(self, url: str, run: RunSettings):
        super().__init__(url, run)
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
            text = str(exc).strip()
            first = scrub(text.splitlines()[0] if text else type(exc).__name__, url)
            raise DatabaseError(f"Cannot connect to {self.display_url}: {first}") from None
        # psycopg returns str here; older releases returned bytes.
        encoding = self.conn.info.parameter_status("server_encoding")
        self.sql_ascii = encoding in ("SQL_ASCII", b"SQL_ASCII")
        if self.sql_ascii:
            for type_name in ("text", "varchar", "bpchar", "name"):
                self.conn.adapters.register_loader(type_name, _Utf8Text)
            self.conn.adapters.register_dumper(str, _Utf8Str)
        # Our own bounds, unless the URL's options already set them (the user's word wins).
        options = set_in_options(str(params.get("options", "")))
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

    @property
    def usable(self) -> bool:
        return not self.conn.closed and not self.conn.broken

    # -- names and types ---------------------------------------------------------------------

    def quote_part(self, part: str) -> str:
        return sql.Identifier(part).as_string(self.conn)

    def type_name(self, kind: str, id_type: str) -> str:
        return id_type if kind == "id" else _TYPES[kind]

    def kind_of(self, declared: str) -> str:
        base = declared.lower()
        if base.startswith(("character varying", "character(", "character")):
            return "text"
        return _KINDS.get(base, base)

    # -- catalog -----------------------------------------------------------------------------

    def table_columns(self, table: str) -> dict[str, str] | None:
        # Asked of the catalog: a SELECT on a missing table would abort a transaction.
        regclass = ".".join(f'"{part}"' for part in table.split("."))
        (oid,) = self.conn.execute("SELECT to_regclass(%s)::oid", (regclass,)).fetchone()
        if oid is None:
            return None
        rows = self.conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        ).fetchall()
        return {name: declared.lower() for name, declared in rows}

    # -- statements --------------------------------------------------------------------------

    def _sql(self, statement: str, params: Sequence[Any]) -> tuple[Any, Any]:
        """The statement and parameters as psycopg takes them. A SQL_ASCII connection would
        encode the statement as ASCII, so a Japanese word in source_where could not be sent:
        there the statement goes as UTF-8 bytes with its values bound here, by psycopg's own
        quoting (``sql.Literal``), and psycopg parses nothing."""
        if not self.sql_ascii:
            return statement, tuple(params)
        values = iter(params)

        def bind(match: re.Match[bytes]) -> bytes:
            if match.group(1) == b"%":
                return b"%"
            return sql.Literal(next(values)).as_bytes(self.conn)

        return _PLACEHOLDER.sub(bind, statement.encode("utf-8")), None

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(*self._sql(statement, params)).rowcount

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(*self._sql(statement, params)).fetchall()

    def insert_returning_id(self, statement: str, params: Sequence[Any], column: str) -> int:
        returning = self._sql(f"{statement} RETURNING {column}", params)
        (value,) = self.conn.execute(*returning).fetchone()
        return int(value)

    @contextlib.contextmanager
    def stream(
        self, statement: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Iterator[Streamed]:
        # A server-side cursor streams the rows instead of holding two copies in memory;
        # binary results hand over bytea as raw bytes instead of hex text to decode.
        # (psycopg writes a server-side cursor's DECLARE in the connection's encoding: on a
        # SQL_ASCII server the rows come through a client-side cursor instead.)
        name = None if self.sql_ascii else "related_stream"
        with (
            self.conn.transaction(),
            self.conn.cursor(name=name, binary=binary) as cursor,  # type: ignore[call-overload]
        ):
            if name:
                cursor.itersize = 2000
            cursor.execute(*self._sql(statement, params))
            columns = [c.name.lower() for c in cursor.description or ()]
            yield Streamed(columns, cursor, cursor.description)

    def id_type(self, ids: Sequence[Any], description: Any) -> str:
        oid = next(c.type_code for c in description if c.name.lower() == "id")
        (name,) = self.conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
        if not _TYPE_NAME.match(name):
            raise SourceError(f"Entry ids have the unsupported type {name!r}. Cast them to text.")
        return name

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return
        # Rows of bytes only (the token cache) go in binary: no hex encoding on either side.
        binary = all(isinstance(value, bytes) for value in first)
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN" + (
            " (FORMAT BINARY)" if binary else ""
        )
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            if binary:
                copy.set_types(["bytea"] * len(first))
            for row in itertools.chain([first], rows):
                copy.write_row(row)

    def delete_keys(self, table: str, column: str, keys: Sequence[Any]) -> None:
        self.conn.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (list(keys),))

    def is_distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}"

    def drop_temporary(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS pg_temp.{self.quote_part(name)}"

    def analyze(self, table: str) -> None:
        self.conn.execute(f"ANALYZE {table}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    # -- one run at a time -------------------------------------------------------------------

    def try_lock(self, results_table: str) -> bool:
        # Session-level advisory lock: no table is locked, and it is per database.
        query = "SELECT pg_try_advisory_lock(%s)"
        return bool(self.conn.execute(query, (lock_key(results_table),)).fetchone()[0])

    def unlock(self, results_table: str) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(results_table),))

    # -- errors ------------------------------------------------------------------------------

    def classify(self, exc: BaseException) -> Problem:
        state = getattr(exc, "sqlstate", None) or ""
        for prefix in (state, state[:3], state[:2]):
            if prefix in _PROBLEMS:
                return _PROBLEMS[prefix]
        if isinstance(exc, psycopg.OperationalError) and not self.usable:
            return Problem.CONNECTION_LOST
        if isinstance(exc, UnicodeError):
            return Problem.ENCODING
        return Problem.OTHER
