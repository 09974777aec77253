"""Fixtures: real SQLite files in tmp dirs, and real PostgreSQL and MariaDB/MySQL databases,
created and dropped.

The servers come from RELATED_TEST_POSTGRES_URL (default: the local server as user postgres)
and RELATED_TEST_MYSQL_URL (default: the local server as root). Each test that asks for
``pg_url`` or ``mysql_url`` gets its own fresh database; ``backend`` runs a test once per
database (the contract every backend passes). Tests never skip a server silently: if it is
unreachable they fail, so CI can't go green without it.
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
MYSQL_ADMIN_URL = os.environ.get("RELATED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql")


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


def mysql_connect(url: str, **kwargs):
    """A PyMySQL connection to a mysql:// URL (autocommit, utf8mb4), as the tests use it."""
    import pymysql

    from related.db.urls import mysql_target

    target = mysql_target(url)
    return pymysql.connect(
        database=target.database,
        charset="utf8mb4",
        autocommit=True,
        **{**target.connect_args, **kwargs},
    )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    name = f"related_test_{uuid.uuid4().hex[:12]}"
    with mysql_connect(MYSQL_ADMIN_URL) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield with_dbname(MYSQL_ADMIN_URL, name)
    finally:
        with mysql_connect(MYSQL_ADMIN_URL) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One fresh, empty database of each backend in turn."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'blog.db'}"
        sqlite3.connect(tmp_path / "blog.db").close()
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("mysql_url")
    return Backend(request.param, url)


class Backend:
    """A database of one backend, reached with its own driver (never through related), so
    tests can set up data and check what the job really stored. Statements use %s
    placeholders on every backend."""

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    def connect(self):
        if self.name == "sqlite":
            return sqlite3.connect(self.url[len("sqlite:///") :], isolation_level=None)
        if self.name == "postgresql":
            return psycopg.connect(self.url, autocommit=True)
        return mysql_connect(self.url)

    def sql(self, statement: str, params: tuple | list = ()) -> list[tuple]:
        conn = self.connect()
        try:
            if self.name == "sqlite":
                cursor = conn.execute(statement.replace("%s", "?"), tuple(params))
                return cursor.fetchall()
            if self.name == "postgresql":
                cursor = conn.execute(statement, tuple(params) or None)
                return cursor.fetchall() if cursor.description else []
            with conn.cursor() as cursor:
                cursor.execute(statement, tuple(params) or None)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def script(self, statements: str) -> None:
        for statement in statements.split(";\n"):
            if statement.strip():
                self.sql(statement)

    # Types for the sample table, by backend.
    def types(self, id_type: str = "integer") -> dict[str, str]:
        if self.name == "mysql":
            return {
                "id": "INT" if id_type == "integer" else "VARCHAR(64)",
                "text": "TEXT",
                "long": "MEDIUMTEXT",
                "bool": "BOOLEAN",
                "time": "DATETIME",
            }
        if self.name == "postgresql":
            return {
                "id": id_type,
                "text": "text",
                "long": "text",
                "bool": "boolean",
                "time": "timestamptz",
            }
        return {
            "id": id_type.upper(),
            "text": "TEXT",
            "long": "TEXT",
            "bool": "INTEGER",
            "time": "TEXT",
        }

    def load_sample(self, *, id_type: str = "integer") -> None:
        """The sample corpus in ``entries`` (id, title, body, tags, category, published,
        updated_at); text ids are post-01..."""
        t = self.types(id_type)
        self.sql(
            f"CREATE TABLE entries (id {t['id']} PRIMARY KEY, title {t['text']} NOT NULL, "
            f"body {t['long']} NOT NULL, tags {t['text']}, category {t['text']}, "
            f"published {t['bool']} NOT NULL, updated_at {t['time']})"
        )
        rows = [
            (
                e["id"] if id_type == "integer" else f"post-{e['id']:02d}",
                e["title"],
                e["body"],
                e["tags"],
                e["category"],
                e["published"],
                e["updated_at"].replace("T", " ")[:19] if e["updated_at"] else None,
            )
            for e in sample_entries()
        ]
        self.insert("entries", rows)

    def load_synthetic(self, rows: list[tuple[int, str, str]]) -> None:
        """(id, title, body) rows into ``entries``, replacing what it held."""
        t = self.types()
        self.sql(
            f"CREATE TABLE IF NOT EXISTS entries (id {t['id']} PRIMARY KEY, "
            f"title {t['text']}, body {t['long']})"
        )
        self.sql("DELETE FROM entries")
        self.insert("entries", rows)

    def insert(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        marks = ", ".join(["%s"] * len(rows[0]))
        conn = self.connect()
        try:
            if self.name == "sqlite":
                with conn:
                    conn.execute("BEGIN")
                    conn.executemany(
                        f"INSERT INTO {table} VALUES ({marks.replace('%s', '?')})", rows
                    )
            else:
                with conn.cursor() as cursor:
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        finally:
            conn.close()

    def rows(self, table: str = "related_entries") -> list[tuple]:
        """Stored results as (entry_id, related_entry_id, score, rank), in list order."""
        return [
            tuple(row)
            for row in self.sql(
                f"SELECT entry_id, related_entry_id, score, {self.quote('rank')} FROM "
                f"{table} ORDER BY 1, 4"
            )
        ]

    def quote(self, name: str) -> str:
        return f"`{name}`" if self.name == "mysql" else f'"{name}"'

    def tables(self) -> set[str]:
        if self.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        elif self.name == "postgresql":
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        else:
            query = (
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        return {str(name) for (name,) in self.sql(query)} - {"sqlite_sequence"}


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
    Backend("postgresql", url).load_sample(id_type=id_type)


def sqlite_rows(url: str, table: str = "related_entries") -> list[tuple]:
    return Backend("sqlite", url).rows(table)


def pg_rows(url: str, table: str = "related_entries") -> list[tuple]:
    return Backend("postgresql", url).rows(table)
