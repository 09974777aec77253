"""End to end on real SQLite files, through click's CliRunner."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import defaultdict

import pytest
from conftest import sqlite_rows

from related import __version__
from related.sample import sample_entries

SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published = 1")


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(url[len("sqlite:///") :])
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def test_run_writes_results_and_show_reads_them(invoke, sample_sqlite):
    result = invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS)
    assert result.exit_code == 0, result.output
    assert "37 entries" in result.stdout  # 3 of the 40 sample entries are drafts
    rows = sqlite_rows(sample_sqlite)
    drafts = {e["id"] for e in sample_entries() if not e["published"]}
    assert len(rows) == 37 * 10
    assert not drafts & ({r[0] for r in rows} | {r[1] for r in rows})
    assert all(r[0] != r[1] for r in rows)
    assert all(isinstance(r[0], int) and isinstance(r[1], int) for r in rows)
    per_entry = defaultdict(list)
    for entry_id, _, score, rank in rows:
        per_entry[entry_id].append((rank, score))
    for ranked in per_entry.values():
        assert [rank for rank, _ in ranked] == list(range(1, 11))
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)

    shown = invoke("show", "1", "--database-url", sample_sqlite)
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == "1  GitHub Actionsでプルリクエストごとにテストを自動実行する"
    first = next(r for r in rows if r[0] == 1 and r[3] == 1)
    assert lines[1].split()[:3] == ["1.", f"{first[2]:.3f}", str(first[1])]

    as_json = json.loads(
        invoke("show", "1", "--database-url", sample_sqlite, "--format", "json").stdout
    )
    assert [n["related_entry_id"] for n in as_json["related"]] == [r[1] for r in rows if r[0] == 1]


def test_ranking_sanity_top3_mostly_same_topic(invoke, sample_sqlite):
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS).exit_code == 0
    topic = {e["id"]: e["category"] for e in sample_entries()}
    top3 = [r for r in sqlite_rows(sample_sqlite) if r[3] <= 3]
    same = sum(topic[a] == topic[b] for a, b, _, _ in top3)
    assert len(top3) == 37 * 3
    assert same / len(top3) >= 0.80, f"only {same}/{len(top3)} top-3 neighbours share the topic"


def test_rerun_is_idempotent_and_deleted_entries_lose_their_rows(invoke, sample_sqlite):
    args = ("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS, "--format", "json")
    first = json.loads(invoke(*args).stdout)
    before = sqlite_rows(sample_sqlite)
    again = json.loads(invoke(*args, "--force").stdout)
    assert again["write"] == {
        "table": "related_entries",
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "total": first["write"]["total"],
    }
    assert sqlite_rows(sample_sqlite) == before

    sql(sample_sqlite, "DELETE FROM entries WHERE id = 5")
    third = json.loads(invoke(*args).stdout)
    after = sqlite_rows(sample_sqlite)
    assert 5 not in {r[0] for r in after} | {r[1] for r in after}
    assert third["write"]["deleted"] >= 10
    assert third["write"]["total"] == len(after) == 36 * 10


def test_dry_run_writes_nothing(invoke, sample_sqlite):
    result = invoke("run", "--database-url", sample_sqlite, "--dry-run", "--format", "json")
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["write"] is None and report["pairs"] > 0
    assert sql(sample_sqlite, "SELECT name FROM sqlite_master WHERE name='related_entries'") == []


def test_failure_during_write_leaves_previous_results(invoke, sample_sqlite):
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS).exit_code == 0
    before = sqlite_rows(sample_sqlite)
    # A real failure inside the write transaction: the database refuses one row.
    sql(
        sample_sqlite,
        "CREATE TRIGGER refuse BEFORE INSERT ON related_entries WHEN NEW.entry_id = 7 "
        "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END",
    )
    # Change the corpus so entry 7's neighbours must be rewritten, and others deleted.
    sql(sample_sqlite, "DELETE FROM entries WHERE id IN (15, 23)")
    sql(sample_sqlite, "DELETE FROM related_entries WHERE entry_id = 7")
    before = sqlite_rows(sample_sqlite)
    result = invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS)
    assert result.exit_code == 1
    assert "Writing 'related_entries' failed, previous results kept" in result.stderr
    assert "refused by test trigger" in result.stderr
    assert sqlite_rows(sample_sqlite) == before


def test_text_ids_keep_their_type(invoke, tmp_path):
    url = f"sqlite:///{tmp_path / 'slugs.db'}"
    sql(url, "CREATE TABLE posts (slug TEXT PRIMARY KEY, subject TEXT, content TEXT)")
    for slug, subject, content in [
        ("docker-intro", "Docker入門", "Dockerのコンテナとイメージの基本"),
        ("docker-compose", "Docker Compose", "複数のコンテナをComposeで起動する"),
        ("coffee-beans", "コーヒー豆", "焙煎したコーヒー豆でドリップ"),
        ("coffee-drip", "ドリップ", "ハンドドリップでコーヒーを抽出"),
    ]:
        sql(url, "INSERT INTO posts VALUES (?, ?, ?)", (slug, subject, content))
    result = invoke(
        "run",
        "--database-url",
        url,
        "--source-query",
        "SELECT slug AS id, subject AS title, content AS body FROM posts",
    )
    assert result.exit_code == 0, result.output
    rows = sqlite_rows(url)
    assert {r[0]: r[1] for r in rows if r[3] == 1} == {
        "coffee-beans": "coffee-drip",
        "coffee-drip": "coffee-beans",
        "docker-compose": "docker-intro",
        "docker-intro": "docker-compose",
    }
    declared = sql(
        url, "SELECT type FROM pragma_table_info('related_entries') WHERE name='entry_id'"
    )
    assert declared == [("TEXT",)]
    shown = invoke(
        "show",
        "docker-intro",
        "--database-url",
        url,
        "--source-table",
        "posts",
        "--id-column",
        "slug",
        "--title-column",
        "subject",
    )
    assert shown.stdout.splitlines()[:2][0] == "docker-intro  Docker入門"
    assert shown.stdout.splitlines()[1].endswith("docker-compose  Docker Compose")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--source-table", "posts"),
            "Error: Table 'posts' does not exist in sqlite:///{path}. Set source_table or source_query.",
        ),
        (
            ("--body-column", "content"),
            "Error: Table 'entries' has no column 'content' (it has: id, title, body, tags, category, "
            "published, updated_at). Set body_column or source_query.",
        ),
        (
            ("--source-where", "published = 2"),
            "Error: table 'entries' returned no entries. Check source_table / source_where / "
            "source_query; the previous results were left as they were.",
        ),
        (
            ("--source-query", "SELECT id, title FROM entries"),
            "Error: source_query returned columns id, title; it must return id, title, body "
            "(missing: body). Alias them, e.g. SELECT post_id AS id, subject AS title, content AS "
            "body FROM posts.",
        ),
        (
            ("--source-query", "SELECT e.id, e.title, e.body FROM entries e, entries f"),
            "Error: source_query: duplicate entry id 1. Ids must be unique; if a custom source_query "
            "joins tags or categories, aggregate them (GROUP BY id).",
        ),
        (
            ("--results-table", 'x"; DROP TABLE entries; --'),
            "Error: results_table = 'x\"; DROP TABLE entries; --' is not a valid name",
        ),
        (("--top-k", "0"), "Error: top_k = 0 must be between 1 and 1000."),
    ],
)
def test_bad_source_and_settings_exit_2_with_clear_message(invoke, sample_sqlite, args, message):
    assert invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS[:2]).exit_code == 0
    before = sqlite_rows(sample_sqlite)
    result = invoke("run", "--database-url", sample_sqlite, *args)
    assert result.exit_code == 2
    expected = message.format(path=sample_sqlite[len("sqlite:///") :])
    assert result.stderr.startswith(expected)
    assert "Traceback" not in result.output
    assert sqlite_rows(sample_sqlite) == before
    assert sql(sample_sqlite, "SELECT count(*) FROM entries") == [(40,)]


def test_incompatible_results_table_is_not_rewritten(invoke, sample_sqlite):
    sql(sample_sqlite, "CREATE TABLE related_entries (entry_id INTEGER, related_id INTEGER)")
    sql(sample_sqlite, "INSERT INTO related_entries VALUES (1, 2)")
    result = invoke("run", "--database-url", sample_sqlite)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Results table 'related_entries' exists but has no column 'related_entry_id'"
    )
    assert sql(sample_sqlite, "SELECT * FROM related_entries") == [(1, 2)]


def test_null_empty_symbol_and_invalid_utf8_entries_warn_and_still_run(invoke, tmp_path):
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    sql(url, "CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT, body BLOB)")
    sql(url, "INSERT INTO entries VALUES (1, 'Docker入門', 'コンテナとイメージ')")
    sql(url, "INSERT INTO entries VALUES (2, 'Dockerの基本', 'コンテナを動かす')")
    sql(url, "INSERT INTO entries VALUES (3, NULL, NULL)")
    sql(url, "INSERT INTO entries VALUES (4, '', '!!! ??? ★ 😀 ----')")
    sql(url, "INSERT INTO entries VALUES (5, 'コンテナ', CAST(X'E382B3FF' AS TEXT))")
    result = invoke("run", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "2 entries yielded no terms" in result.stderr and "3, 4" in result.stderr
    rows = sqlite_rows(url)
    assert {r[0] for r in rows} == {1, 2, 5}


def test_unsupported_scheme_missing_file_and_no_url(invoke, tmp_path):
    result = invoke("run", "--database-url", "oracle://root:hunter2@localhost/blog")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Unsupported database URL scheme 'oracle' in 'oracle://root:***@localhost/blog'. "
        "Use sqlite:///path.db, postgresql://user@host/dbname or mysql://user@host/dbname.\n"
    )
    result = invoke("run", "--database-url", "sqlite:///missing.db")
    assert result.exit_code == 2 and "SQLite database missing.db does not exist" in result.stderr
    assert not (tmp_path / "missing.db").exists()
    result = invoke("run")
    assert result.exit_code == 2 and result.stderr.startswith("Error: No database given.")


def test_relative_sqlite_url_and_env_configuration(invoke, tmp_path):
    from related.sample import create_sample_database

    create_sample_database(tmp_path / "blog.db")  # invoke() runs in tmp_path
    result = invoke(
        "run",
        "--format",
        "json",
        env={
            "DATABASE_URL": "sqlite:///blog.db",
            "RELATED_TOP_K": "3",
            "RELATED_RESULTS_TABLE": "similar",
        },
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["write"]["total"] == 40 * 3
    assert len(sqlite_rows(f"sqlite:///{tmp_path / 'blog.db'}", "similar")) == 40 * 3


def test_demo_and_version(invoke, tmp_path):
    result = invoke("demo", "--database-url", f"sqlite:///{tmp_path / 'demo.db'}")
    assert result.exit_code == 0, result.output
    assert "created 40 sample entries" in result.stdout
    assert result.stdout.count("   1. ") == 3
    version = subprocess.run(
        [sys.executable, "-m", "related", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"related, version {__version__}"


def test_workers_and_neighbour_modes_give_the_same_results_here(invoke, sample_sqlite):
    def run(*flags):
        result = invoke(
            "run",
            "--database-url",
            sample_sqlite,
            *SAMPLE_FLAGS,
            "--force",
            "--format",
            "json",
            *flags,
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout), sqlite_rows(sample_sqlite)

    auto, auto_rows = run()
    assert auto["neighbour_mode"] == "exact"  # auto prunes only from 20,000 entries
    serial, serial_rows = run("--workers", "1", "--neighbour-mode", "exact")
    parallel, parallel_rows = run("--workers", "2", "--neighbour-mode", "exact")
    assert (serial["workers"], parallel["workers"]) == (1, 2)
    assert serial_rows == parallel_rows == auto_rows
    pruned, pruned_rows = run("--neighbour-mode", "pruned")
    assert pruned["neighbour_mode"] == "pruned"
    # Pruned mode scores its candidates exactly: any pair it keeps has the exact score. (Its
    # recall is measured in bench/, on corpora big enough for "rare terms" to mean something.)
    exact_scores = {(a, b): s for a, b, s, _ in auto_rows}
    assert all(
        abs(exact_scores[(a, b)] - s) < 1e-12
        for a, b, s, _ in pruned_rows
        if (a, b) in exact_scores
    )
    assert sum((a, b) in exact_scores for a, b, _, _ in pruned_rows) >= 0.9 * len(pruned_rows)
