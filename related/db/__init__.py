"""Databases: the only package that imports sqlite3 or psycopg.

``connect(url)`` picks the backend from the URL's scheme (SQLAlchemy/Django convention):

    sqlite:///blog.db            relative to the working directory
    sqlite:////var/data/blog.db  absolute
    postgresql://user:pw@host:5432/db?sslmode=require   any libpq URL (postgres:// too)
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from related.config import SourceSettings
from related.entries import Entries, EntryId
from related.errors import ConfigError

ENTRY_COLUMNS = ("id", "title", "body", "tags", "category", "updated_at")
RESULT_COLUMNS = ("entry_id", "related_entry_id", "score", "rank")

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
class ResultRow:
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

    @abstractmethod
    def read_entries(self, source: SourceSettings) -> Entries: ...

    @abstractmethod
    def write_results(
        self, rows: Sequence[ResultRow], *, results_table: str, id_type: str
    ) -> WriteReport:
        """Replace the whole results table with ``rows`` in ONE transaction."""

    @abstractmethod
    def read_neighbours(
        self, entry_id: str, *, results_table: str, source: SourceSettings
    ) -> tuple[str | None, list[StoredNeighbour]]:
        """The stored neighbours of one entry (id given as text) and the entry's title."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(url: str) -> Database:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from related.db.sqlite import SQLiteDatabase

        return SQLiteDatabase(url)
    if scheme in ("postgresql", "postgres"):
        from related.db.postgres import PostgresDatabase

        return PostgresDatabase(url)
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
    from related.errors import SourceError

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
    from related.errors import SourceError

    missing = [c for c in ("id", "title", "body") if c not in columns]
    if missing:
        raise SourceError(
            f"source_query returned columns {', '.join(columns) or '(none)'}; it must return "
            f"id, title, body (missing: {', '.join(missing)}). Alias them, e.g. "
            "SELECT post_id AS id, subject AS title, content AS body FROM posts."
        )


def check_results_columns(available: Sequence[str], table_label: str) -> None:
    from related.errors import SourceError

    missing = [c for c in RESULT_COLUMNS if c not in available]
    if missing:
        raise SourceError(
            f"Results table {table_label} exists but has no column {missing[0]!r} (it has: "
            f"{', '.join(available)}); it was not written. Set results_table to a new name, "
            "or drop that table so related can create it."
        )
