"""Fixtures: real SQLite files in tmp dirs and real PostgreSQL databases, created and dropped.

The PostgreSQL server comes from RELATED_TEST_POSTGRES_URL (default: the local server as user
postgres). Each test that asks for ``pg_url`` gets its own fresh database. Tests never skip
PostgreSQL silently: if the server is unreachable they fail, so CI can't go green without it.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from related.cli import cli
from related.sample import create_sample_database, sample_entries

ADMIN_URL = os.environ.get(
    "RELATED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def with_dbname(url: str, dbname: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{dbname}" + (f"?{query}" if query else "")


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"related_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_dbname(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run the CLI in a clean environment (no DATABASE_URL / RELATED_* leaking in)."""
    for key in list(os.environ):
        if key == "DATABASE_URL" or key.startswith("RELATED_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def _invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return _invoke


@pytest.fixture
def sample_sqlite(tmp_path: Path) -> str:
    """A SQLite file with the sample corpus; returns its sqlite:/// URL (absolute)."""
    path = tmp_path / "blog.db"
    create_sample_database(path)
    return f"sqlite:///{path}"


def load_sample_into_postgres(url: str, *, id_type: str = "integer") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE entries (id {} PRIMARY KEY, title text NOT NULL, body text NOT NULL,"
                " tags text, category text, published boolean NOT NULL, updated_at timestamptz)"
            ).format(sql.SQL(id_type))
        )
        with conn.cursor() as cur, cur.copy("COPY entries FROM STDIN") as copy:
            for e in sample_entries():
                entry_id = e["id"] if id_type == "integer" else f"post-{e['id']:02d}"
                copy.write_row(
                    (
                        entry_id,
                        e["title"],
                        e["body"],
                        e["tags"],
                        e["category"],
                        e["published"],
                        e["updated_at"],
                    )
                )


def sqlite_rows(url: str, table: str = "related_entries") -> list[tuple]:
    path = url[len("sqlite:///") :]
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f'SELECT entry_id, related_entry_id, score, rank FROM "{table}" ORDER BY 1, 4'
        ).fetchall()
    conn.close()
    return rows


def pg_rows(url: str, table: str = "related_entries") -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT entry_id, related_entry_id, score, rank FROM {} ORDER BY 1, 4").format(
                sql.Identifier(table)
            )
        ).fetchall()
