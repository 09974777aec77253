"""Driver errors become the project's errors here, and nowhere else.

Each dialect sorts its driver's exceptions into a Problem (by exception class, SQLSTATE or
error number); this module words the message for each Problem the same way on every
backend: what was being done, the driver's first line (passwords scrubbed), and the fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from related.config import RunSettings
from related.errors import ConfigError, DatabaseError, RelatedError, SourceError


class Problem(enum.Enum):
    READ_ONLY = "read_only"  # read-only file, database, transaction or server
    NOT_A_DATABASE = "not_a_database"  # SQLite: the file is something else
    STATEMENT_TIMEOUT = "statement_timeout"
    LOCK_TIMEOUT = "lock_timeout"  # waited too long for a row or table lock
    CONNECTION_LOST = "connection_lost"
    PERMISSION = "permission"
    QUERY = "query"  # the SQL itself: syntax, unknown table or column, bad value
    ENCODING = "encoding"  # text the database sent that is not what it claims
    OTHER = "other"


@dataclass(frozen=True)
class DriverFailure:
    """A driver error as the dialect understood it."""

    problem: Problem
    detail: str  # the driver's first line, passwords already scrubbed


# What to do about each problem, and the error class (so the exit code) it becomes.
_FIXES: dict[Problem, tuple[type[RelatedError], str]] = {
    Problem.READ_ONLY: (
        ConfigError,
        "The database is read-only for this job, and related writes its results, run log and "
        "token cache there: connect to a writable database (the primary, not a replica), give "
        "the job's user write access, or use --dry-run to only compute.",
    ),
    Problem.NOT_A_DATABASE: (
        ConfigError,
        "Check DATABASE_URL: it must name a SQLite database file.",
    ),
    Problem.STATEMENT_TIMEOUT: (
        DatabaseError,
        "A statement ran longer than statement_timeout = {run.statement_timeout:g} s; raise it "
        "with --statement-timeout or RELATED_STATEMENT_TIMEOUT (0 = no limit).",
    ),
    Problem.LOCK_TIMEOUT: (
        DatabaseError,
        "Another session held a lock the job needed for longer than db_lock_timeout = "
        "{run.db_lock_timeout:g} s; retry, or raise --db-lock-timeout (RELATED_DB_LOCK_TIMEOUT).",
    ),
    Problem.CONNECTION_LOST: (
        DatabaseError,
        "The connection to the database was lost; nothing was published. Run again when the "
        "server is back.",
    ),
    Problem.PERMISSION: (
        ConfigError,
        "Grant the job's user the privileges it needs (see examples/{privileges_example}).",
    ),
    Problem.QUERY: (SourceError, "{query_hint}"),
    Problem.ENCODING: (
        SourceError,
        "The database sent text that is not valid in its declared encoding; store the entries "
        "as UTF-8 (utf8mb4 on MySQL).",
    ),
    Problem.OTHER: (DatabaseError, ""),
}


def translate(
    failure: DriverFailure,
    context: str,
    *,
    run: RunSettings,
    query_hint: str = "",
    backend: str = "",
) -> RelatedError:
    """The project's error for ``failure`` while doing ``context`` ("Writing 'x' failed")."""
    error_class, fix = _FIXES[failure.problem]
    privileges = "least-privilege-mysql.sql" if backend == "mysql" else "least-privilege.sql"
    fix = fix.format(run=run, query_hint=query_hint, privileges_example=privileges)
    message = f"{context}: {failure.detail.rstrip('.')}."
    return error_class(f"{message} {fix}" if fix else message)
