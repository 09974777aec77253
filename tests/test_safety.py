"""Production safety, against the real PostgreSQL server (and SQLite where it applies):
readers never see a partial table, killed or disconnected runs leave results intact, one run
at a time, the run log, skipping unchanged input, dry-run diffs, least privilege, presets."""

from __future__ import annotations

import json
import os
import signal
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
from corpus import synthetic_entries
from psycopg import sql

from related.db import lock_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published")
SNAPSHOT = (
    "SELECT count(*), count(DISTINCT entry_id), min(c), max(c), md5(string_agg(x, ',' ORDER BY x))"
    " FROM (SELECT entry_id, count(*) OVER (PARTITION BY entry_id) AS c,"
    " entry_id || ':' || related_entry_id || ':' || rank AS x FROM related_entries) t"
)


def execute(url: str, statement: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def load_synthetic(url: str, rows: list[tuple[int, str, str]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS entries (id integer PRIMARY KEY, title text, body text)"
        )
        conn.execute("TRUNCATE entries")
        with conn.cursor() as cur, cur.copy("COPY entries FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def job(url: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATED_")}
    env["DATABASE_URL"] = url
    return subprocess.Popen(
        [sys.executable, "-m", "related", "-q", "run", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def job_backend(url: str):
    """The job's backend pid once it is waiting on a lock inside its write transaction."""
    rows = execute(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'related' "
        "AND wait_event_type = 'Lock' AND datname = current_database()",
    )
    return rows[0][0] if rows else None


# -- readers during a write ------------------------------------------------------------------


def test_readers_never_see_a_partial_table_and_never_wait(pg_url):
    load_synthetic(pg_url, synthetic_entries(3000, seed=1))
    first = job(pg_url)
    assert first.wait() == 0, first.stderr
    old = execute(pg_url, SNAPSHOT)[0]
    load_synthetic(pg_url, synthetic_entries(3000, seed=1, variant=3))

    polls: list[tuple] = []
    waits: list[float] = []
    page_waits: list[float] = []
    page_sizes: set[int] = set()
    stop = threading.Event()

    def poll():
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                polls.append(conn.execute(SNAPSHOT).fetchone())
                waits.append(time.perf_counter() - started)
                time.sleep(0.002)

    def blog_page():
        """What the blog itself runs to render an entry's related list."""
        with psycopg.connect(pg_url, autocommit=True) as conn:
            entry = 0
            while not stop.is_set():
                entry = entry % 3000 + 1
                started = time.perf_counter()
                rows = conn.execute(
                    "SELECT related_entry_id FROM related_entries WHERE entry_id = %s "
                    "ORDER BY rank",
                    (entry,),
                ).fetchall()
                page_waits.append(time.perf_counter() - started)
                page_sizes.add(len(rows))
                time.sleep(0.001)

    readers = [threading.Thread(target=poll), threading.Thread(target=blog_page)]
    for reader in readers:
        reader.start()
    try:
        second = job(pg_url)
        assert second.wait() == 0, second.stderr
    finally:
        time.sleep(0.05)
        stop.set()
        for reader in readers:
            reader.join()
    new = execute(pg_url, SNAPSHOT)[0]
    assert new != old and new[0] == old[0] == 30000
    seen = {p[4] for p in polls}
    assert seen <= {old[4], new[4]}, "a reader saw a result set that is neither old nor new"
    assert old[4] in seen and new[4] in seen
    assert all(p[0] == 30000 and p[1] == 3000 and p[2] == p[3] == 10 for p in polls)
    assert page_sizes == {10}
    # The longest single poll, including any wait on the writer (none expected under MVCC).
    print(
        f"\n{len(polls)} whole-table polls, longest {max(waits) * 1000:.1f} ms; "
        f"{len(page_waits)} blog-page queries, longest {max(page_waits) * 1000:.1f} ms"
    )
    assert max(waits) < 0.5 and max(page_waits) < 0.5


# -- killed and disconnected runs --------------------------------------------------------------


def start_blocked_rewrite(url: str):
    """Run the job so that it blocks inside its write transaction, after it started changing
    rows: a test transaction holds the lock on a row the job must delete."""
    execute(url, "DELETE FROM entries WHERE id = 2")
    blocker = psycopg.connect(url)
    blocker.execute("SELECT * FROM related_entries WHERE entry_id = 2 FOR UPDATE")
    process = job(url)
    pid = wait_until(lambda: job_backend(url))
    return process, blocker, pid


def running_run_logged(url: str) -> bool:
    return bool(execute(url, "SELECT 1 FROM related_runs WHERE status = 'running'"))


@pytest.mark.parametrize("when", ["just started", "while tokenising", "inside the write"])
def test_sigkill_leaves_previous_results(pg_url, when):
    load_synthetic(pg_url, synthetic_entries(1500, seed=2))
    assert job(pg_url).wait() == 0
    before = pg_rows(pg_url)
    blocker = None
    if when == "inside the write":
        process, blocker, _ = start_blocked_rewrite(pg_url)
    else:
        load_synthetic(pg_url, synthetic_entries(1500, seed=2, variant=2))
        process = job(pg_url)
        if when == "while tokenising":
            # The lock is held and the run logged: it is reading or tokenising now.
            wait_until(lambda: running_run_logged(pg_url))
    process.send_signal(signal.SIGKILL)
    process.wait()
    if blocker is not None:
        blocker.rollback()
        blocker.close()
    assert process.returncode == -signal.SIGKILL
    assert pg_rows(pg_url) == before
    # The lock died with the process: the next run goes ahead, and marks the dead run.
    after = job(pg_url)
    assert after.wait() == 0, after.stderr.read()
    statuses = [r[0] for r in execute(pg_url, "SELECT status FROM related_runs ORDER BY run_id")]
    assert statuses[-1] == "success" and "running" not in statuses
    if when != "just started":
        assert "interrupted" in statuses


def test_sigint_inside_the_write_exits_130_and_rolls_back(pg_url):
    """Ctrl-C, and `docker stop` (the image's STOPSIGNAL is SIGINT)."""
    load_synthetic(pg_url, synthetic_entries(800, seed=5))
    assert job(pg_url).wait() == 0
    before = pg_rows(pg_url)
    process, blocker, _ = start_blocked_rewrite(pg_url)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "previous results were left as they were" in process.stderr.read()
    blocker.rollback()
    blocker.close()
    assert pg_rows(pg_url) == before
    last = execute(pg_url, "SELECT status FROM related_runs ORDER BY run_id DESC LIMIT 1")
    assert last == [("interrupted",)]


def test_terminated_connection_leaves_previous_results(pg_url):
    load_synthetic(pg_url, synthetic_entries(800, seed=3))
    assert job(pg_url).wait() == 0
    before = pg_rows(pg_url)
    process, blocker, pid = start_blocked_rewrite(pg_url)
    execute(pg_url, "SELECT pg_terminate_backend(%s)", (pid,))
    assert process.wait() == 1
    stderr = process.stderr.read()
    assert "Writing 'related_entries' failed, previous results kept" in stderr
    assert "Traceback" not in stderr
    blocker.rollback()
    blocker.close()
    assert pg_rows(pg_url) == before


def test_row_lock_wait_is_bounded_by_db_lock_timeout(pg_url):
    load_synthetic(pg_url, synthetic_entries(300, seed=4))
    assert job(pg_url).wait() == 0
    before = pg_rows(pg_url)
    execute(pg_url, "DELETE FROM entries WHERE id = 2")
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("SELECT * FROM related_entries WHERE entry_id = 2 FOR UPDATE")
        started = time.perf_counter()
        process = job(pg_url, "--db-lock-timeout", "1")
        assert process.wait(timeout=60) == 1
        assert time.perf_counter() - started < 30
        assert "lock timeout" in process.stderr.read()
        blocker.rollback()
    assert pg_rows(pg_url) == before
    failed = execute(
        pg_url, "SELECT status, message FROM related_runs ORDER BY run_id DESC LIMIT 1"
    )
    assert failed[0][0] == "failed" and "lock timeout" in failed[0][1]


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
        process = job(role_url, *SAMPLE_FLAGS)
        assert process.wait() == 0, process.stderr.read()
        assert execute(pg_url, "SELECT count(*) FROM related_entries") == [(370,)]
        # The token cache tables the script prepared are used: no warning, one row per entry
        # and one per title (title_share counts each title alone too).
        assert "token cache" not in process.stderr.read()
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


# -- Lokka ---------------------------------------------------------------------------------------

LOKKA_FLAGS = ("--preset", "lokka", "--results-layout", "lokka", "--results-table", "similarities")
LOKKA_SCHEMA = """
CREATE TABLE categories (id integer PRIMARY KEY, title text);
CREATE TABLE entries (id integer PRIMARY KEY, title text, body text, type text, draft boolean,
  frozen_tag_list text, category_id integer, updated_at timestamp);
"""


def test_lokka_preset_and_similarities_table(invoke, pg_url):
    from related.sample import sample_entries

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(LOKKA_SCHEMA)
        conn.execute("INSERT INTO categories VALUES (1, 'Tech'), (2, 'Life')")
        for e in sample_entries():
            conn.execute(
                "INSERT INTO entries VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
                (
                    e["id"],
                    e["title"],
                    e["body"],
                    "Page" if e["id"] == 40 else "Post",
                    not e["published"],
                    e["tags"],
                    1 if e["category"] in ("cicd", "docker", "aws") else 2,
                ),
            )
        # An existing Lokka similarities table that stored integer scores.
        conn.execute(
            "CREATE TABLE similarities (id serial PRIMARY KEY, entry_id integer, "
            "similar_entry_id integer, score integer)"
        )
    args = ("run", "--database-url", pg_url, *LOKKA_FLAGS)
    result = invoke(*args)
    assert result.exit_code == 2
    assert "stores score as integer, which would round every score" in result.stderr
    assert "ALTER TABLE similarities ALTER COLUMN score TYPE double precision" in result.stderr
    execute(pg_url, "ALTER TABLE similarities ALTER COLUMN score TYPE double precision")
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 36  # 3 drafts and 1 page left out
    rows = execute(pg_url, "SELECT entry_id, similar_entry_id, score FROM similarities")
    assert len(rows) == 360 and all(0 < r[2] <= 1 for r in rows)
    assert not {11, 20, 31, 40} & ({r[0] for r in rows} | {r[1] for r in rows})
    # What a Lokka theme runs:
    theme = execute(
        pg_url,
        "SELECT similar_entry_id FROM similarities WHERE entry_id = 1 ORDER BY score DESC LIMIT 3",
    )
    shown = invoke("show", "1", "--database-url", pg_url, *LOKKA_FLAGS)
    assert [int(line.split()[2]) for line in shown.stdout.splitlines()[1:4]] == [
        t[0] for t in theme
    ]


def test_lokka_preset_on_sqlite(invoke, tmp_path):
    from related.sample import sample_entries

    path = tmp_path / "lokka.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(LOKKA_SCHEMA)
        for e in sample_entries():
            conn.execute(
                "INSERT INTO entries VALUES (?, ?, ?, 'Post', ?, ?, NULL, NULL)",
                (e["id"], e["title"], e["body"], "f" if e["published"] else "t", e["tags"]),
            )
    conn.close()
    result = invoke("run", "--database-url", f"sqlite:///{path}", *LOKKA_FLAGS, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 37
