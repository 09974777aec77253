"""End to end on the real PostgreSQL server (a fresh database per test)."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from conftest import load_sample_into_postgres, pg_rows

from related.sample import sample_entries

pytestmark = pytest.mark.postgres
SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published")


def execute(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def test_run_show_and_rerun_on_postgres(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    result = invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["entries"] == 37 and report["write"]["inserted"] == 370
    rows = pg_rows(pg_url)
    assert len(rows) == 370 and all(isinstance(r[0], int) for r in rows)
    columns = execute(
        pg_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'related_entries' ORDER BY ordinal_position",
    )
    assert columns == [
        ("entry_id", "integer"),
        ("related_entry_id", "integer"),
        ("score", "double precision"),
        ("rank", "smallint"),
    ]
    primary_key = execute(
        pg_url,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'related_entries'::regclass "
        "AND i.indisprimary ORDER BY a.attname",
    )
    assert primary_key == [("entry_id",), ("related_entry_id",)]

    again = json.loads(
        invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS, "--format", "json", "--force").stdout
    )
    assert (again["write"]["inserted"], again["write"]["updated"], again["write"]["deleted"]) == (
        0,
        0,
        0,
    )
    assert pg_rows(pg_url) == rows

    shown = invoke("show", "1", "--database-url", pg_url)
    assert shown.exit_code == 0
    assert (
        shown.stdout.splitlines()[0]
        == "1  GitHub Actionsでプルリクエストごとにテストを自動実行する"
    )
    assert len(shown.stdout.splitlines()) == 11
    bad = invoke("show", "abc", "--database-url", pg_url)
    assert bad.exit_code == 2 and "Entry id 'abc'" in bad.stderr


def test_same_results_as_sqlite(invoke, pg_url, sample_sqlite):
    from conftest import sqlite_rows

    load_sample_into_postgres(pg_url)
    assert invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS).exit_code == 0
    assert (
        invoke(
            "run",
            "--database-url",
            sample_sqlite,
            "--tags-column",
            "tags",
            "--source-where",
            "published = 1",
        ).exit_code
        == 0
    )
    pg, lite = pg_rows(pg_url), sqlite_rows(sample_sqlite)
    assert [(a, b, r) for a, b, _, r in pg] == [(a, b, r) for a, b, _, r in lite]
    assert all(abs(x[2] - y[2]) < 1e-12 for x, y in zip(pg, lite, strict=True))


def test_text_and_uuid_ids_and_tag_arrays(invoke, pg_url):
    load_sample_into_postgres(pg_url, id_type="text")
    assert invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS).exit_code == 0
    rows = pg_rows(pg_url)
    assert rows[0][0].startswith("post-")
    assert execute(
        pg_url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'related_entries'::regclass AND attname = 'related_entry_id'",
    ) == [("text",)]
    shown = invoke("show", "post-01", "--database-url", pg_url)
    assert "GitHub Actions" in shown.stdout.splitlines()[0]

    execute(pg_url, "CREATE TABLE notes (id uuid PRIMARY KEY, title text, body text, tags text[])")
    ids = [uuid.UUID(int=i) for i in range(4)]
    for note_id, (title, body, tags) in zip(
        ids,
        [
            ("Docker入門", "コンテナとイメージ", ["Docker", "コンテナ"]),
            ("Compose", "複数のコンテナを起動", ["Docker"]),
            ("焙煎", "コーヒー豆を焙煎する", ["コーヒー"]),
            ("抽出", "ドリップでコーヒーを抽出", ["コーヒー", "ドリップ"]),
        ],
        strict=True,
    ):
        execute(pg_url, "INSERT INTO notes VALUES (%s, %s, %s, %s)", (note_id, title, body, tags))
    result = invoke(
        "run",
        "--database-url",
        pg_url,
        "--source-table",
        "notes",
        "--tags-column",
        "tags",
        "--results-table",
        "note_links",
        "--top-k",
        "1",
    )
    assert result.exit_code == 0, result.output
    links = dict(execute(pg_url, "SELECT entry_id, related_entry_id FROM note_links"))
    assert links == {ids[0]: ids[1], ids[1]: ids[0], ids[2]: ids[3], ids[3]: ids[2]}


def test_failure_during_write_leaves_previous_results(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    assert invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS).exit_code == 0
    execute(pg_url, "DELETE FROM entries WHERE id IN (15, 23)")
    execute(
        pg_url,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.entry_id = 7 THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
        "RETURN NEW; END $$",
    )
    execute(pg_url, "DELETE FROM related_entries WHERE entry_id = 7")
    execute(
        pg_url,
        "CREATE TRIGGER refuse BEFORE INSERT ON related_entries FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    before = pg_rows(pg_url)
    result = invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS)
    assert result.exit_code == 1
    assert "Writing 'related_entries' failed, previous results kept" in result.stderr
    assert "refused by test trigger" in result.stderr
    assert pg_rows(pg_url) == before
    # Nothing is left behind: no staging table, no open transaction.
    assert execute(
        pg_url,
        "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in%' "
        "AND datname = current_database()",
    ) == [(0,)]


def test_missing_table_and_incompatible_results_table(invoke, pg_url):
    result = invoke("run", "--database-url", pg_url)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Table 'entries' does not exist in postgresql://")
    load_sample_into_postgres(pg_url)
    execute(
        pg_url,
        "CREATE TABLE related_entries (entry_id text, related_entry_id text, "
        "score double precision, rank smallint)",
    )
    execute(pg_url, "INSERT INTO related_entries VALUES ('a', 'b', 0.5, 1)")
    result = invoke("run", "--database-url", pg_url)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Results table 'related_entries' has entry_id of type text, but the source ids "
        "are integer; it was not written."
    )
    assert execute(pg_url, "SELECT * FROM related_entries") == [("a", "b", 0.5, 1)]


def test_unreachable_server_masks_the_password(invoke):
    url = "postgresql://blog:s3cr3t-pw@127.0.0.1:1/blog?connect_timeout=2"
    result = invoke("run", "--database-url", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Cannot connect to postgresql://blog:***@127.0.0.1:1/blog"
    )
    assert "s3cr3t-pw" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_libpq_parameters_pass_through_and_application_name(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    execute(pg_url, "CREATE SCHEMA blog")
    execute(pg_url, "ALTER TABLE entries SET SCHEMA blog")
    # options=-csearch_path=blog is a libpq parameter: unqualified names now resolve in "blog".
    url = pg_url + "?options=-csearch_path%3Dblog"
    result = invoke("run", "--database-url", url, "--top-k", "2")
    assert result.exit_code == 0, result.output
    assert execute(pg_url, "SELECT count(*) FROM blog.related_entries") == [(80,)]
    result = invoke(
        "run",
        "--database-url",
        pg_url,
        "--source-table",
        "blog.entries",
        "--results-table",
        "blog.similar",
        "--top-k",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert execute(pg_url, "SELECT count(*) FROM blog.similar") == [(40,)]


def test_hostile_names_are_rejected_before_any_sql(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    for flag in ("--source-table", "--results-table", "--body-column"):
        result = invoke("run", "--database-url", pg_url, flag, 'entries"; DROP TABLE entries; --')
        assert result.exit_code == 2 and "is not a valid name" in result.stderr
    assert execute(pg_url, "SELECT count(*) FROM entries") == [(len(sample_entries()),)]
    tables = execute(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("entries",)]


def test_valid_names_are_still_quoted_so_reserved_words_work(invoke, pg_url, sample_sqlite):
    from related.db import connect

    with connect(pg_url) as db:
        assert db.dialect.quote("blog.order") == '"blog"."order"'
    load_sample_into_postgres(pg_url)
    for url in (pg_url, sample_sqlite):
        result = invoke("run", "--database-url", url, "--results-table", "order", "--top-k", "1")
        assert result.exit_code == 0, result.output
        shown = invoke("show", "1", "--database-url", url, "--results-table", "order")
        assert shown.exit_code == 0 and len(shown.stdout.splitlines()) == 2


def test_only_the_settings_the_url_sets_are_left_alone(pg_url):
    from related.config import RunSettings
    from related.db import connect

    run = RunSettings(statement_timeout=300, db_lock_timeout=30)
    # deadlock_timeout contains "lock_timeout": it must not stop the job from setting that.
    with connect(pg_url + "?options=-c%20deadlock_timeout%3D2s", run) as db:
        assert db.dialect.query("SHOW lock_timeout") == [("30s",)]
        assert db.dialect.query("SHOW deadlock_timeout") == [("2s",)]
    with connect(pg_url + "?options=-clock_timeout%3D5s%20--statement-timeout%3D7s", run) as db:
        assert db.dialect.query("SHOW lock_timeout") == [("5s",)]
        assert db.dialect.query("SHOW statement_timeout") == [("7s",)]
