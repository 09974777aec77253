"""Production safety, against the real PostgreSQL server (and SQLite where it applies): one run
at a time, the run log, skipping unchanged input, dry-run diffs, least privilege, presets.

Readers during a rewrite, killed, interrupted and disconnected runs, lock and statement
timeouts and read-only databases are test_backend_failures.py's, on every backend."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import ADMIN_URL, load_sample_into_postgres, pg_rows, sqlite_rows
from psycopg import sql

from related.db import lock_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published")


def execute(url: str, statement: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def job(url: str, *args: str, quiet: bool = True) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATED_")}
    env["DATABASE_URL"] = url
    return subprocess.Popen(
        [sys.executable, "-m", "related", *(["-q"] if quiet else []), "run", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- one run at a time ---------------------------------------------------------------------------


def test_second_run_exits_3_or_waits_for_the_lock(pg_url, invoke):
    load_sample_into_postgres(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("related_entries"),))
        result = invoke("run", "--database-url", pg_url)
        assert result.exit_code == 3
        assert result.stderr.startswith(
            "Error: Another related run is writing 'related_entries'; this run did nothing."
        )
        started = time.perf_counter()
        result = invoke("run", "--database-url", pg_url, "--wait-for-lock", "--lock-timeout", "1")
        assert result.exit_code == 3 and "after waiting 1 s" in result.stderr
        assert 1 <= time.perf_counter() - started < 10
        # A different results table has its own lock.
        other = invoke("run", "--database-url", pg_url, "--results-table", "other_related")
        assert other.exit_code == 0, other.output
        # Released while the second run waits: it goes ahead.
        threading.Timer(0.5, holder.execute, ("SELECT pg_advisory_unlock_all()",)).start()
        result = invoke("run", "--database-url", pg_url, "--wait-for-lock", "--lock-timeout", "30")
        assert result.exit_code == 0, result.output
    assert execute(pg_url, "SELECT count(*) FROM related_entries") == [(400,)]


def test_sqlite_second_run_exits_3(invoke, sample_sqlite, tmp_path):
    import fcntl

    path = sample_sqlite[len("sqlite:///") :]
    with open(f"{path}.related-related_entries.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = invoke("run", "--database-url", sample_sqlite)
        assert result.exit_code == 3 and "Another related run" in result.stderr
        fcntl.flock(handle, fcntl.LOCK_UN)
    assert invoke("run", "--database-url", sample_sqlite).exit_code == 0


# -- run log, skipping, dry run ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_skip_when_unchanged_edits_and_deletions_count(invoke, backend, request):
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        load_sample_into_postgres(url)
        flags, rows_of = SAMPLE_FLAGS, pg_rows
        run_sql = execute
    else:
        url = request.getfixturevalue("sample_sqlite")
        flags, rows_of = ("--tags-column", "tags", "--source-where", "published = 1"), sqlite_rows

        def run_sql(u, statement, params=None):
            with sqlite3.connect(u[len("sqlite:///") :]) as conn:
                return conn.execute(statement.replace("%s", "?"), params or ()).fetchall()

    def run(*extra):
        result = invoke("run", "--database-url", url, *flags, "--format", "json", *extra)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = run()
    assert first["skipped"] is None and first["write"]["inserted"] == 370
    second = run()
    assert second["skipped"].startswith(f"nothing changed since run {first['run_id']}")
    assert second["write"] is None and "tokenize" not in second["seconds"]
    text = invoke("run", "--database-url", url, *flags)
    assert "left as it is (--force to run anyway)" in text.stdout
    assert run("--force")["write"]["inserted"] == 0

    run_sql(url, "UPDATE entries SET body = body || ' 追記：焙煎とドリップ' WHERE id = 2")
    edited = run()
    assert edited["skipped"] is None and edited["write"]["updated"] > 0
    run_sql(url, "DELETE FROM entries WHERE id = 3")
    deleted = run()
    assert deleted["skipped"] is None and deleted["write"]["deleted"] >= 10
    assert 3 not in {r[0] for r in rows_of(url)}
    assert run("--top-k", "3")["write"]["deleted"] > 0  # settings count too

    log = invoke("runs", "--database-url", url, "--format", "json")
    records = json.loads(log.stdout)
    assert [r["status"] for r in records] == [
        "success",
        "success",
        "success",
        "success",
        "skipped",
        "skipped",
        "success",
    ]
    assert records[0]["rows_total"] == 36 * 3 and records[0]["entries"] == 36
    listing = invoke("runs", "--database-url", url).stdout.splitlines()
    assert listing[0].split()[:3] == ["run", "status", "started"]
    assert listing[1].split()[1] == "success"


def test_dry_run_reports_the_diff_and_writes_nothing(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    assert invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS).exit_code == 0
    before = pg_rows(pg_url)
    runs_before = execute(pg_url, "SELECT count(*) FROM related_runs")
    execute(pg_url, "DELETE FROM entries WHERE id = 4")
    result = invoke("run", "--database-url", pg_url, *SAMPLE_FLAGS, "--dry-run")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines.pop(1) == "token cache: terms of 36 entries reused, 0 tokenised"
    assert lines[1].startswith("dry run: nothing written")
    assert "remove 1," in lines[2] and "neighbours gained" in lines[2]
    assert any(line.strip().startswith("4: loses") for line in lines[3:])
    report = json.loads(
        invoke(
            "run", "--database-url", pg_url, *SAMPLE_FLAGS, "--dry-run", "--format", "json"
        ).stdout
    )
    assert report["diff"]["entries_removed"] == 1 and report["diff"]["neighbours_lost"] >= 10
    assert pg_rows(pg_url) == before
    assert execute(pg_url, "SELECT count(*) FROM related_runs") == runs_before


def test_failed_run_is_logged_without_the_password(invoke, pg_url):
    load_sample_into_postgres(pg_url)
    # trust authentication ignores the password, so the URL still works with one in it.
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:pa55-w0rd@")
    result = invoke("run", "--database-url", url, "--source-where", "no_such_column = 1")
    assert result.exit_code == 2
    assert "pa55-w0rd" not in result.output
    runs = execute(pg_url, "SELECT status, message FROM related_runs")
    assert runs[0][0] == "failed" and "no_such_column" in runs[0][1]
    assert "pa55-w0rd" not in json.dumps(runs)


# -- least privilege -----------------------------------------------------------------------------

LEAST_PRIVILEGE_SQL = (ROOT / "examples" / "least-privilege.sql").read_text(encoding="utf-8")


def test_job_runs_as_a_least_privilege_role(pg_url):
    load_sample_into_postgres(pg_url)
    role = f"related_job_{uuid.uuid4().hex[:8]}"
    script = LEAST_PRIVILEGE_SQL.replace("related_job", role).replace(
        "CONNECT ON DATABASE blog", f"CONNECT ON DATABASE {pg_url.rsplit('/', 1)[1]}"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(script)
    role_url = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    try:
        process = job(role_url, *SAMPLE_FLAGS, quiet=False)  # warnings reach stderr
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        assert execute(pg_url, "SELECT count(*) FROM related_entries") == [(370,)]
        # The token cache tables the script prepared are used: no warning, one row per entry
        # and one per title (title_share counts each title alone too).
        assert "token cache" not in stderr and "Traceback" not in stderr
        assert execute(pg_url, "SELECT count(*) FROM related_token_cache") == [(2 * 37,)]
        # ... and can do nothing else.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            execute(role_url, "DELETE FROM entries")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            execute(role_url, "CREATE TABLE intruder (x int)")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
