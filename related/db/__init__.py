"""Databases: the only package that imports a database driver.

``connect(url)`` picks a dialect from the URL's scheme (SQLAlchemy/Django convention) and
returns a Store, the one implementation of everything the job does with a database:

    sqlite:///blog.db            relative to the working directory
    sqlite:////var/data/blog.db  absolute
    postgresql://user:pw@host:5432/db?sslmode=require   any libpq URL (postgres:// too)
    mysql://user:pw@host:3306/db?ssl_ca=/etc/ca.pem     MySQL and MariaDB (mariadb:// too)

Layout: urls.py (URL parsing and masking), schema.py (the job's tables, declared once),
store.py (the algorithm), errors.py (driver errors -> the project's errors), dialects/ (one
module per database: only what differs).
"""

from __future__ import annotations

import hashlib
import importlib

from related.config import RunSettings
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
from related.db.store import LockedError, Store, token_terms_table
from related.db.urls import backend_of, mask_url, scrub, sqlite_path

# backend -> (module, class): a new database is a dialect module and one line here.
DIALECTS = {
    "sqlite": ("related.db.dialects.sqlite", "SQLiteDialect"),
    "postgresql": ("related.db.dialects.postgres", "PostgresDialect"),
    "mysql": ("related.db.dialects.mysql", "MySQLDialect"),
}

Database = Store  # the name the rest of the package and library users know


def connect(url: str, run: RunSettings | None = None) -> Store:
    """Open the database at ``url``: ConfigError for a bad URL, DatabaseError if unreachable."""
    module, name = DIALECTS[backend_of(url)]
    dialect_class = getattr(importlib.import_module(module), name)
    return Store(dialect_class(url, run or RunSettings()))


def lock_key(results_table: str) -> int:
    """A stable signed 64-bit key for the run lock of one results table (PostgreSQL's
    advisory lock; MySQL names its lock from the same digest)."""
    digest = hashlib.sha256(f"related:{results_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


__all__ = [
    "RUN_COLUMNS",
    "CachedTokens",
    "Database",
    "LockedError",
    "ResultRow",
    "ResultsLayout",
    "RunOutcome",
    "RunRecord",
    "Store",
    "StoredNeighbour",
    "TokenCacheUpdate",
    "WriteReport",
    "cached_tokens",
    "connect",
    "lock_key",
    "mask_url",
    "scrub",
    "sqlite_path",
    "token_terms_table",
]
