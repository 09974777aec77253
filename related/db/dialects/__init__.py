"""What differs between databases, and nothing else.

A dialect owns one driver connection and answers the questions the store (store.py) asks:
how to quote a name, its placeholder, the type name of each logical kind, how to list a
table's columns, how to bulk-load rows, the UPDATE-from form, null-safe comparison, the
transaction and snapshot statements, the run lock, and which Problem a driver error is. The
algorithm itself (stage, publish, run log, token cache, read-back) lives in the store, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from related.config import RunSettings, validate_identifier
from related.db.errors import Problem
from related.db.urls import mask_url


@dataclass
class Streamed:
    """Rows of a SELECT as they arrive: column names (lower case) and the rows themselves."""

    columns: list[str]
    rows: Iterable[Sequence[Any]]
    description: Any  # the driver's cursor description, for Dialect.id_type


class Dialect(ABC):
    name: str  # "sqlite", "postgresql", "mysql": also the key of a preset's query
    placeholder: str  # "?" or "%s"
    driver_errors: tuple[type[BaseException], ...]
    # Whether an integer-typed column would round a score (SQLite keeps 0.5 in an INTEGER
    # column: its columns have affinities, not types).
    integer_columns_round = True

    def __init__(self, url: str, run: RunSettings):
        self.url = url
        self.run = run

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    # -- names and types -------------------------------------------------------------------

    def quote(self, name: str) -> str:
        """A configured (schema.)name, validated, then quoted by the driver's rules."""
        return ".".join(
            self.quote_part(p) for p in validate_identifier(name, "table", qualified=True)
        )

    @abstractmethod
    def quote_part(self, part: str) -> str: ...

    def fragment(self, text: str) -> str:
        """Trusted SQL from configuration (source_query, source_where, a preset) made safe to
        embed in a statement that also has parameters: with the %s style, a literal % must be
        doubled (``LIKE '%foo'``)."""
        return text.replace("%", "%%") if self.placeholder == "%s" else text

    @abstractmethod
    def type_name(self, kind: str, id_type: str) -> str:
        """The column type for a logical kind (schema.KINDS); ``id_type`` for kind "id"."""

    @abstractmethod
    def kind_of(self, declared: str) -> str:
        """The logical kind of a declared column type: integer, text, score (floating point),
        blob, timestamp, or the declared type itself when it is none of these."""

    table_options = ""  # appended to CREATE TABLE (MySQL: engine and character set)
    missing_table_hint = ""  # why a table may look missing when it is not

    def fix_column_type(self, table: str, column: str, type_name: str) -> str:
        return f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_name}"

    def refuses_transactions(self, table: str) -> str | None:
        """The statement that fixes a table which cannot take part in a transaction (MySQL's
        MyISAM), or None."""
        return None

    # -- catalog -----------------------------------------------------------------------------

    @abstractmethod
    def table_columns(self, table: str) -> dict[str, str] | None:
        """Column name -> declared type (lower case), in table order; None if no such table."""

    # -- statements --------------------------------------------------------------------------

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return its row count."""

    @abstractmethod
    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def insert_returning_id(self, statement: str, params: Sequence[Any], column: str) -> int:
        """Run an INSERT and return the value its serial column ``column`` got."""

    @abstractmethod
    def stream(
        self, statement: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> AbstractContextManager[Streamed]:
        """The rows of a SELECT as they arrive, without holding them all in the driver."""

    @abstractmethod
    def id_type(self, ids: Sequence[Any], description: Any) -> str:
        """The column type that stores these source ids (from the driver's description of
        the id column or from the values)."""

    @abstractmethod
    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert many rows fast (``table`` and ``columns`` already quoted)."""

    @abstractmethod
    def delete_keys(self, table: str, column: str, keys: Sequence[Any]) -> None:
        """DELETE the rows whose ``column`` is one of ``keys`` (both already quoted)."""

    def update_from(
        self, target: str, staging: str, assignments: Sequence[str], on: str, where: str
    ) -> str:
        """UPDATE ``target`` AS t from ``staging`` AS s. ``assignments`` are column names set
        to s.column."""
        sets = ", ".join(f"{a} = s.{a}" for a in assignments)
        return f"UPDATE {target} AS t SET {sets} FROM {staging} AS s WHERE {on} AND ({where})"

    @abstractmethod
    def is_distinct(self, a: str, b: str) -> str:
        """Null-safe "a differs from b"."""

    def create_temporary(self, name: str) -> str:
        return f"CREATE TEMPORARY TABLE {self.quote_part(name)}"

    @abstractmethod
    def drop_temporary(self, name: str) -> str:
        """DROP a temporary table, never a permanent one of the same name."""

    def analyze(self, table: str) -> None:  # noqa: B027 (a no-op unless a planner needs it)
        """Refresh the planner's statistics of a freshly loaded table, where that helps."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction: commit on success, roll back on any exception."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside see one consistent state of the database."""

    # -- one run at a time -------------------------------------------------------------------

    @abstractmethod
    def try_lock(self, results_table: str) -> bool:
        """Take the run lock of ``results_table`` if free; it dies with the connection."""

    @abstractmethod
    def unlock(self, results_table: str) -> None: ...

    # -- errors ------------------------------------------------------------------------------

    @abstractmethod
    def classify(self, exc: BaseException) -> Problem: ...

    @staticmethod
    def describe(exc: BaseException) -> str:
        """The driver's message for ``exc`` as one readable line (before scrubbing)."""
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    def recover(self) -> None:  # noqa: B027 (nothing to do unless a driver needs it)
        """Make the connection usable again after an interrupt (Ctrl-C) inside the driver, so
        the run's outcome can still be recorded."""

    @property
    def usable(self) -> bool:
        """False once the connection is known to be broken (no cleanup is tried on it)."""
        return True

    @abstractmethod
    def close(self) -> None: ...


def iter_blocks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    block: list[Sequence[Any]] = []
    for row in rows:
        block.append(row)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block
