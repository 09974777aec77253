"""examples/least-privilege-mysql.sql on the real MariaDB/MySQL server: the job runs as the
user it creates, fills the results, the run log and the token cache it prepared, reads the
cache back on the next run, and the user can do nothing else."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from conftest import MYSQL_ADMIN_URL, Backend, mysql_connect

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (ROOT / "examples" / "least-privilege-mysql.sql").read_text(encoding="utf-8")
SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published")
DENIED = 1142  # ER_TABLEACCESS_DENIED_ERROR: "command denied to user ... for table ..."


def statements(script: str) -> list[str]:
    """The script's statements, comment lines left out."""
    found = []
    for chunk in script.split(";\n"):
        text = "\n".join(line for line in chunk.splitlines() if not line.startswith("--"))
        if text.strip():
            found.append(text.strip())
    return found


def as_user(url: str, user: str, password: str) -> str:
    """``url`` with another user and password."""
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def run_job(url: str, *args: str) -> subprocess.CompletedProcess:
    """`related run` in its own process, as a scheduler would start it (warnings not
    silenced: any of them is on stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATED_")}
    env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "related", "run", *SAMPLE_FLAGS, "--format", "json", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def warnings(process: subprocess.CompletedProcess) -> list[str]:
    """The job's log lines (warnings and errors: "related: ..."); progress lines aside."""
    lines = process.stderr.splitlines()
    return [line for line in lines if line.startswith("related:") or "token cache" in line]


def test_job_runs_as_a_least_privilege_mysql_user(mysql_url):
    backend = Backend("mysql", mysql_url)
    backend.load_sample()
    database = urlsplit(mysql_url).path.lstrip("/")
    user, password = f"related_job_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(18)
    script = (
        SCRIPT.replace("related_job", user)
        .replace("'change-me'", f"'{password}'")
        .replace("ON blog.", f"ON `{database}`.")
    )
    assert "related_job'" not in script and "blog." not in script
    try:
        for statement in statements(script):
            backend.sql(statement)
        user_url = as_user(mysql_url, user, password)

        first = run_job(user_url)
        assert first.returncode == 0, first.stderr
        assert warnings(first) == []  # the token cache and every table were usable
        report = json.loads(first.stdout)
        assert report["entries"] == 37 and report["write"]["inserted"] == 370
        assert report["cache_hits"] == 0
        assert backend.sql("SELECT count(*) FROM related_entries") == [(370,)]
        # One cache row per entry and one per title (title_share counts each title alone).
        assert backend.sql("SELECT count(*) FROM related_token_cache") == [(2 * 37,)]
        assert backend.sql("SELECT count(*) > 1000 FROM related_token_cache_terms") == [(1,)]

        # The next run reads the cache back (the user may SELECT it) and tokenises nothing.
        second = run_job(user_url, "--top-k", "5")
        assert second.returncode == 0, second.stderr
        assert warnings(second) == []
        report = json.loads(second.stdout)
        assert report["cache_hits"] == 37 and report["write"]["deleted"] == 185
        assert backend.sql("SELECT count(*) FROM related_entries") == [(185,)]
        assert backend.sql("SELECT status FROM related_runs ORDER BY run_id") == [
            ("success",),
            ("success",),
        ]

        # ... and the user can do nothing else.
        with mysql_connect(user_url) as conn, conn.cursor() as cursor:
            for statement in (
                "DELETE FROM entries",
                "UPDATE entries SET title = 'x'",
                "CREATE TABLE intruder (x int)",
                "DROP TABLE related_entries",
                "ALTER TABLE related_runs ADD COLUMN x int",
                "SELECT count(*) FROM mysql.user",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cursor.execute(statement)
                assert denied.value.args[0] == DENIED, (statement, denied.value.args)
        assert backend.sql("SELECT count(*) FROM entries") == [(40,)]
        assert "intruder" not in backend.tables()
    finally:
        with mysql_connect(MYSQL_ADMIN_URL) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
