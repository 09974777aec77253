"""The backend contract: every database the job speaks (a SQLite file, PostgreSQL, MariaDB)
passes the same tests, through the CLI, against a real server. Adding a backend means adding
a dialect and a URL to the ``backend`` fixture (conftest.py).

Failure cases (readers during a write, kills, lost connections, timeouts, read-only
databases) are in test_backend_failures.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from conftest import Backend

from related.config import RunSettings
from related.db import connect
from related.sample import sample_entries

SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published")
INTEGER_KIND = {"sqlite": "integer", "postgresql": "integer", "mysql": "bigint"}


def run(invoke, backend: Backend, *extra: str, code: int = 0) -> dict:
    result = invoke("run", "--database-url", backend.url, *SAMPLE_FLAGS, "--format", "json", *extra)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else {"stderr": result.stderr}


def column_types(backend: Backend, table: str) -> dict[str, str]:
    with connect(backend.url) as db:
        columns = db.dialect.table_columns(table)
    assert columns is not None
    return columns


def test_run_show_and_rerun(invoke, backend):
    backend.load_sample()
    report = run(invoke, backend)
    assert report["entries"] == 37 and report["write"]["inserted"] == 370
    rows = backend.rows()
    assert len(rows) == 370 and all(isinstance(r[0], int) and r[0] != r[1] for r in rows)
    assert all(0 < r[2] <= 1 for r in rows)
    by_entry: dict[int, list[tuple[int, float]]] = {}
    for entry, _, score, rank in rows:
        by_entry.setdefault(entry, []).append((rank, score))
    for ranked in by_entry.values():
        assert [rank for rank, _ in ranked] == list(range(1, 11))
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    types = column_types(backend, "related_entries")
    assert list(types) == ["entry_id", "related_entry_id", "score", "rank"]
    assert types["entry_id"].startswith(INTEGER_KIND[backend.name])

    again = run(invoke, backend, "--force")["write"]
    assert (again["inserted"], again["updated"], again["deleted"]) == (0, 0, 0)
    assert backend.rows() == rows

    shown = invoke("show", "1", "--database-url", backend.url)
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert lines[0] == "1  GitHub Actionsでプルリクエストごとにテストを自動実行する"
    assert [int(line.split()[2]) for line in lines[1:]] == [r[1] for r in rows if r[0] == 1]
    bad = invoke("show", "abc", "--database-url", backend.url)
    assert bad.exit_code == 2 and bad.stderr == "Error: Entry id 'abc' is not an integer.\n"


def test_every_backend_stores_the_same_lists_and_scores(invoke, tmp_path, pg_url, mysql_url):
    stored = {}
    for name, url in (
        ("sqlite", f"sqlite:///{tmp_path / 'same.db'}"),
        ("postgresql", pg_url),
        ("mysql", mysql_url),
    ):
        backend = Backend(name, url)
        if name == "sqlite":
            import sqlite3

            sqlite3.connect(tmp_path / "same.db").close()
        backend.load_sample()
        run(invoke, backend)
        stored[name] = backend.rows()
    # Float64 all the way: the very same scores, not merely close ones.
    assert stored["sqlite"] == stored["postgresql"] == stored["mysql"]


def test_text_ids_keep_their_type(invoke, backend):
    backend.load_sample(id_type="text")
    run(invoke, backend)
    rows = backend.rows()
    assert len(rows) == 370 and rows[0][0].startswith("post-")
    assert column_types(backend, "related_entries")["related_entry_id"] in (
        "text",
        "varchar(255)",
    )
    shown = invoke("show", "post-01", "--database-url", backend.url)
    assert "GitHub Actions" in shown.stdout.splitlines()[0]


def test_edits_deletions_and_skip_when_unchanged(invoke, backend):
    backend.load_sample()
    first = run(invoke, backend)
    assert first["skipped"] is None and first["write"]["inserted"] == 370
    assert first["cache_hits"] == 0 and "cache_write" in first["seconds"]
    second = run(invoke, backend)
    assert second["skipped"].startswith(f"nothing changed since run {first['run_id']}")
    assert second["write"] is None and "tokenize" not in second["seconds"]

    backend.sql("UPDATE entries SET body = %s WHERE id = 2", ("焙煎とドリップの話。" * 20,))
    edited = run(invoke, backend)
    assert edited["skipped"] is None and edited["write"]["updated"] > 0
    assert edited["cache_hits"] == 36  # only the edited entry was tokenised again
    backend.sql("DELETE FROM entries WHERE id = 3")
    deleted = run(invoke, backend)
    assert deleted["write"]["deleted"] >= 10 and 3 not in {r[0] for r in backend.rows()}
    # The cache keeps a row per entry and per title (title_share): stale ones are deleted.
    assert backend.sql("SELECT count(*) FROM related_token_cache") == [(2 * 36,)]
    assert run(invoke, backend, "--top-k", "3")["write"]["deleted"] > 0  # settings count too

    records = json.loads(invoke("runs", "--database-url", backend.url, "--format", "json").stdout)
    assert [r["status"] for r in records] == ["success", "success", "success", "skipped", "success"]
    assert records[0]["rows_total"] == 36 * 3 and records[0]["entries"] == 36
    with connect(backend.url) as db:
        logged = db.list_runs("related_runs", limit=1)[0]
    assert logged.started_at.tzinfo is not None and logged.finished_at >= logged.started_at
    assert abs((datetime.now(UTC) - logged.finished_at).total_seconds()) < 600
    # The last success is found however many runs were logged after it.
    columns = "results_table, started_at, status"
    for _ in range(60):
        backend.sql(
            f"INSERT INTO related_runs ({columns}) VALUES (%s, %s, %s)",
            ("related_entries", "2026-12-03 00:00:00", "skipped"),
        )
    assert run(invoke, backend, "--top-k", "3")["skipped"].startswith("nothing changed since run")
    # A run that stores the same rows without the cache, into another table: identical.
    plain = run(invoke, backend, "--no-token-cache", "--results-table", "plain", "--top-k", "3")
    assert plain["cache_hits"] == 0
    assert backend.rows("plain") == backend.rows()


def test_dry_run_reports_the_diff_and_writes_nothing(invoke, backend):
    backend.load_sample()
    report = run(invoke, backend, "--dry-run")
    assert report["write"] is None and report["pairs"] == 370
    assert backend.tables() == {"entries"}  # not even the run log or the cache
    run(invoke, backend)
    before, tables = backend.rows(), backend.tables()
    runs_before = backend.sql("SELECT count(*) FROM related_runs")
    backend.sql("DELETE FROM entries WHERE id = 4")
    report = run(invoke, backend, "--dry-run")
    assert report["diff"]["entries_removed"] == 1 and report["diff"]["neighbours_lost"] >= 10
    assert report["cache_hits"] == 36
    assert backend.rows() == before and backend.tables() == tables
    assert backend.sql("SELECT count(*) FROM related_runs") == runs_before


def test_one_run_at_a_time(invoke, backend):
    backend.load_sample()
    with connect(backend.url) as holder, holder.run_lock("related_entries", RunSettings()):
        result = invoke("run", "--database-url", backend.url)
        assert result.exit_code == 3
        assert result.stderr.startswith(
            "Error: Another related run is writing 'related_entries'; this run did nothing."
        )
        waited = invoke(
            "run", "--database-url", backend.url, "--wait-for-lock", "--lock-timeout", "1"
        )
        assert waited.exit_code == 3 and "after waiting 1 s" in waited.stderr
        # Another results table has a lock of its own.
        other = invoke("run", "--database-url", backend.url, "--results-table", "other_related")
        assert other.exit_code == 0, other.output
    assert "related_entries" not in backend.tables()
    assert invoke("run", "--database-url", backend.url).exit_code == 0


@pytest.mark.parametrize(
    "flag", ["--source-table", "--results-table", "--body-column", "--runs-table", "--table-prefix"]
)
def test_hostile_names_are_refused_before_any_sql(invoke, backend, flag):
    backend.load_sample()
    result = invoke("run", "--database-url", backend.url, flag, 'entries"; DROP TABLE entries; --')
    assert result.exit_code == 2 and "is not a valid" in result.stderr
    assert backend.tables() == {"entries"}
    assert backend.sql("SELECT count(*) FROM entries") == [(len(sample_entries()),)]


def test_reserved_words_as_names_are_quoted(invoke, backend):
    backend.load_sample()
    backend.sql(
        f"CREATE TABLE {backend.quote('order')} (id INTEGER PRIMARY KEY, title TEXT, body TEXT)"
    )
    backend.sql(f"INSERT INTO {backend.quote('order')} SELECT id, title, body FROM entries")
    flags = ("--source-table", "order", "--results-table", "rank", "--runs-table", "key")
    result = invoke("run", "--database-url", backend.url, *flags, "--top-k", "1")
    assert result.exit_code == 0, result.output
    shown = invoke("show", "1", "--database-url", backend.url, *flags)
    assert shown.exit_code == 0 and len(shown.stdout.splitlines()) == 2


def test_percent_signs_in_source_query_work_in_run_show_and_explain(invoke, backend):
    backend.load_sample()
    query = "SELECT id, title, body FROM entries WHERE title NOT LIKE '%zzz%' AND published"
    flags = ("--database-url", backend.url, "--source-query", query)
    result = invoke("run", *flags, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 37
    shown = invoke("show", "1", *flags)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("1  GitHub Actions")
    explained = invoke("explain", "1", "17", *flags)
    assert explained.exit_code == 0, explained.output
    assert explained.stdout.startswith("1 ~ 17: cosine")


def test_a_broken_source_query_is_a_source_error(invoke, backend):
    backend.load_sample()
    for query in (
        "SELECT id, title FROM entries",
        "SELECT id, title, body FROM no_such_table",
        "SELEC id",
    ):
        result = invoke("run", "--database-url", backend.url, "--source-query", query)
        assert result.exit_code == 2, (query, result.output)
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.output
    missing = invoke("run", "--database-url", backend.url, "--source-table", "posts")
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: Table 'posts' does not exist in ")


def test_a_run_log_of_another_shape_is_refused_before_any_work(invoke, backend):
    backend.load_sample()
    backend.sql("CREATE TABLE related_runs (id INTEGER, note TEXT)")
    result = invoke("run", "--database-url", backend.url)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Table 'related_runs' (runs_table) exists but has no column 'run_id' (it has: "
        "id, note); nothing was done. Set runs_table to another name, or move that table away: "
        "ALTER TABLE "
    )
    assert backend.tables() == {"entries", "related_runs"}
    assert invoke("runs", "--database-url", backend.url).exit_code == 2


def test_an_incompatible_results_table_is_refused_and_left_alone(invoke, backend):
    backend.load_sample()
    text = "VARCHAR(20)" if backend.name == "mysql" else "TEXT"
    backend.sql(
        f"CREATE TABLE related_entries (entry_id {text}, related_entry_id {text}, score REAL, "
        f"{backend.quote('rank')} SMALLINT)"
    )
    backend.sql("INSERT INTO related_entries VALUES ('a', 'b', 0.5, 1)")
    result = invoke("run", "--database-url", backend.url)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Results table 'related_entries' has entry_id of type ")
    assert "it was not written" in result.stderr
    assert backend.sql("SELECT entry_id, score FROM related_entries") == [("a", 0.5)]


def test_a_failure_inside_the_publishing_transaction_keeps_the_previous_results(invoke, backend):
    backend.load_sample()
    run(invoke, backend)
    backend.sql("DELETE FROM entries WHERE id IN (15, 23)")
    backend.sql("DELETE FROM related_entries WHERE entry_id = 7")
    if backend.name == "sqlite":
        backend.sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON related_entries WHEN NEW.entry_id = 7 "
            "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        )
    elif backend.name == "postgresql":
        backend.sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.entry_id = 7 THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
            "RETURN NEW; END $$"
        )
        backend.sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON related_entries FOR EACH ROW "
            "EXECUTE FUNCTION refuse()"
        )
    else:
        backend.sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON related_entries FOR EACH ROW "
            "BEGIN IF NEW.entry_id = 7 THEN SIGNAL SQLSTATE '45000' "
            "SET MESSAGE_TEXT = 'refused by test trigger'; END IF; END"
        )
    before = backend.rows()
    result = run(invoke, backend, code=1)
    assert "Writing 'related_entries' failed, previous results kept" in result["stderr"]
    assert "refused by test trigger" in result["stderr"]
    assert len(result["stderr"].splitlines()) == 1
    assert backend.rows() == before
    last = backend.sql("SELECT status FROM related_runs ORDER BY run_id DESC LIMIT 1")
    assert last == [("failed",)]
    # Nothing is left behind: the next run (trigger gone) publishes and needs no cleanup.
    backend.sql(
        "DROP TRIGGER refuse" + (" ON related_entries" if backend.name == "postgresql" else "")
    )
    assert run(invoke, backend)["write"]["deleted"] >= 20


def test_a_token_cache_that_cannot_be_made_costs_a_warning_not_the_run(invoke, backend):
    backend.load_sample()
    backend.sql("CREATE TABLE related_token_cache (something INTEGER)")
    result = invoke("run", "--database-url", backend.url)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("related: Cannot use the token cache 'related_token_cache'")
    assert "The run goes on" in result.stderr and len(result.stderr.splitlines()) == 1
    assert backend.sql("SELECT count(*) FROM related_entries") == [(400,)]


def test_the_run_log_is_declared_once_for_the_store_and_its_records():
    from related.db import RUN_COLUMNS
    from related.db.schema import RUN_LOG

    assert RUN_LOG.names == RUN_COLUMNS
