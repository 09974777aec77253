"""How long a run takes when nothing changed, against a full run, on PostgreSQL.

    .venv/bin/python bench/skip_unchanged.py 3000

Creates a scratch database on RELATED_TEST_POSTGRES_URL's server (default: local, user
postgres), loads N synthetic entries (tests/corpus.py), runs `related run` once, then times
3 forced full runs and 5 skipped runs as subprocesses (start-up included, as cron sees it) and
prints the medians and their ratio. The database is dropped afterwards.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from corpus import synthetic_entries  # noqa: E402

ADMIN = os.environ.get("RELATED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main(n: int) -> None:
    name = f"related_bench_{uuid.uuid4().hex[:8]}"
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE entries (id integer PRIMARY KEY, title text, body text)")
            with conn.cursor() as cur, cur.copy("COPY entries FROM STDIN") as copy:
                for row in synthetic_entries(n, seed=1):
                    copy.write_row(row)
        env = {**os.environ, "DATABASE_URL": url}
        related = [sys.executable, "-m", "related", "-q", "run"]

        def timed(*args: str) -> float:
            started = time.perf_counter()
            subprocess.run([*related, *args], env=env, check=True, capture_output=True)
            return time.perf_counter() - started

        timed()
        full = statistics.median(timed("--force") for _ in range(3))
        skipped = statistics.median(timed() for _ in range(5))
        print("| entries | full run (median of 3) | skipped run (median of 5) | ratio |")
        print("| ---: | ---: | ---: | ---: |")
        print(f"| {n} | {full:.2f} s | {skipped:.2f} s | {skipped / full:.3f} |")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
