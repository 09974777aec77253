"""Incremental runs and the PostgreSQL overhead, end to end, as cron would run the job.

    .venv/bin/python bench/incremental.py --sizes 10000 --runs 3
    .venv/bin/python bench/incremental.py --sizes 100000 --runs 1 --backends sqlite postgres

For each size and backend: a scratch copy of the bench corpus (bench/gen_corpus.py; SQLite file
copied, or loaded into a new database on RELATED_TEST_POSTGRES_URL's server), then

1. a first run with the token cache (empty cache: every entry tokenised, the cache written),
2. per round: edit 1% of the entries (a sentence appended to the body), then time
   - `related run` (the token cache supplies 99% of the terms), and
   - `related run --no-token-cache --results-table full_results` (a full run, the baseline),
   and check that both result tables hold exactly the same rows.

Every run is a subprocess (`python -m related run --format json`, start-up included) under
/usr/bin/time for its peak RSS. Each round also times the end-to-end goal's baseline: MeCab's
own command-line tool (Debian's `mecab`, if installed) tokenising the same text, cleaned titles
and bodies as `clean_text` leaves them, split into two halves run side by side (2 processes).
Prints one table row per size and backend: medians over the rounds, ratios measured in the
same rounds. Scratch files and databases are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench_run import mecab_command, run_side_by_side, write_halves  # noqa: E402 (bench/)

from related.text import clean_text  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
ADMIN = os.environ.get("RELATED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
EDIT = "<p>追記：この記事の内容は新しい版に合わせて更新しました。</p>"
RESULTS = "SELECT entry_id, related_entry_id, score, rank FROM {} ORDER BY 1, 2"


def corpus_file(n: int) -> Path:
    path = CACHE / f"corpus-{n}-s1.db"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_corpus.py"), str(n)], check=True)
    return path


class Scratch:
    """A database holding a copy of the corpus, with SQL in either dialect."""

    def __init__(self, backend: str, n: int, workdir: Path):
        self.backend = backend
        source = corpus_file(n)
        if backend == "sqlite":
            self.path = workdir / "blog.db"
            shutil.copyfile(source, self.path)
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"related_bench_{uuid.uuid4().hex[:8]}"
            self.url = f"{ADMIN.rsplit('/', 1)[0]}/{self.name}"
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
            with (
                sqlite3.connect(source) as lite,
                psycopg.connect(self.url, autocommit=True) as conn,
            ):
                conn.execute("CREATE TABLE entries (id integer PRIMARY KEY, title text, body text)")
                with conn.cursor() as cur, cur.copy("COPY entries FROM STDIN") as copy:
                    for row in lite.execute("SELECT id, title, body FROM entries"):
                        copy.write_row(row)
                conn.execute("ANALYZE entries")

    def execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as conn:
                rows = conn.execute(
                    statement.replace("%s", "?").replace("%%", "%"), params
                ).fetchall()
            conn.close()
            return rows
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def size_of_cache(self) -> float:
        """MB the token cache occupies (row data only)."""
        if self.backend == "sqlite":
            (total,) = self.execute(
                "SELECT sum(length(key) + length(term_ids) + length(counts)) "
                "FROM related_token_cache"
            )[0]
        else:
            (total,) = self.execute("SELECT pg_total_relation_size('related_token_cache')")[0]
        return (total or 0) / 1e6

    def drop(self) -> None:
        if self.backend == "postgres":
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )


def run(url: str, *args: str) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GB) and the JSON report of one `related run`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATED_")}
    env["DATABASE_URL"] = url
    command = [sys.executable, "-m", "related", "-q", "run", "--format", "json", *args]
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    done = subprocess.run([*timer, *command], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"related run {' '.join(args)} failed:\n{done.stderr}")
    peak_kb = int(done.stderr.strip().splitlines()[-1]) if timer else 0
    return seconds, peak_kb / 1e6, json.loads(done.stdout)


def mecab_cli_two_processes(db: Scratch, workdir: Path) -> float | None:
    """Wall seconds of the MeCab CLI over the cleaned text in two halves, side by side."""
    command = mecab_command()
    if command is None:
        return None
    texts = [clean_text(t) for row in db.execute("SELECT title, body FROM entries") for t in row]
    halves = write_halves(texts, workdir)
    del texts
    started = time.perf_counter()
    run_side_by_side(command, halves)
    return time.perf_counter() - started


def measure(backend: str, n: int, rounds: int, changed: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="related-incremental-") as workdir:
        db = Scratch(backend, n, Path(workdir))
        try:
            first, first_rss, _ = run(db.url)
            cache_mb = db.size_of_cache()
            every = round(1 / changed)
            incremental, full, stages, checks, cli = [], [], [], [], []
            for r in range(rounds):
                db.execute(
                    "UPDATE entries SET body = body || %s WHERE id %% %s = %s",
                    (EDIT, every, r % every),
                )
                inc = run(db.url)
                base = run(db.url, "--no-token-cache", "--results-table", "full_results")
                cli.append(mecab_cli_two_processes(db, Path(workdir)))
                incremental.append(inc)
                full.append(base)
                stages.append(inc[2]["seconds"])
                checks.append(
                    db.execute(RESULTS.format("related_entries"))
                    == db.execute(RESULTS.format("full_results"))
                )
            hits = incremental[-1][2]["cache_hits"]
        finally:
            db.drop()
    inc_s = statistics.median(s for s, _, _ in incremental)
    full_s = statistics.median(s for s, _, _ in full)
    cli_s = statistics.median(cli) if None not in cli else None
    return {
        "backend": backend,
        "entries": n,
        "first run (cache written) s": first,
        "full run, no cache s": full_s,
        "1% edited, with cache s": inc_s,
        "ratio": inc_s / full_s,
        "mecab CLI x2 s": cli_s,
        # Per round, then the median: each full run against the CLI timed next to it.
        "full / CLI x2": (
            statistics.median(f[0] / c for f, c in zip(full, cli, strict=True)) if cli_s else None
        ),
        "cache hits": hits,
        "identical results": all(checks),
        "cache MB": cache_mb,
        "peak RSS GB full / cached": (
            statistics.median(r for _, r, _ in full),
            statistics.median(r for _, r, _ in incremental),
        ),
        "stages (cached run)": {
            k: statistics.median(s.get(k, 0.0) for s in stages) for k in stages[0]
        },
        "full_stages": full[-1][2]["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000])
    parser.add_argument("--runs", type=int, default=3, help="rounds of edit + two runs")
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    parser.add_argument("--changed", type=float, default=0.01, help="share of entries edited")
    args = parser.parse_args(argv)
    results = [
        measure(backend, n, args.runs, args.changed)
        for n in args.sizes
        for backend in args.backends
    ]
    print(
        "| entries | database | first run (writes cache) | full run, no cache | "
        f"{args.changed:.0%} edited, cached | ratio | cache hits | same rows | cache size | "
        "peak RSS full / cached | MeCab CLI x2 | full run / CLI x2 |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        full_rss, inc_rss = r["peak RSS GB full / cached"]
        cli_s, versus = r["mecab CLI x2 s"], r["full / CLI x2"]
        print(
            f"| {r['entries']:,} | {r['backend']} | {r['first run (cache written) s']:.1f} s | "
            f"{r['full run, no cache s']:.1f} s | {r['1% edited, with cache s']:.1f} s | "
            f"{r['ratio']:.2f} | {r['cache hits']:,} | {'yes' if r['identical results'] else 'NO'} "
            f"| {r['cache MB']:.0f} MB | {full_rss:.2f} / {inc_rss:.2f} GB | "
            + (f"{cli_s:.1f} s | {versus:.2f} |" if cli_s else "no mecab | |")
        )
    print()
    for r in results:
        cached = ", ".join(f"{k} {v:.2f}" for k, v in r["stages (cached run)"].items())
        full = ", ".join(f"{k} {v:.2f}" for k, v in r["full_stages"].items())
        print(f"{r['entries']:,} {r['backend']}: cached run stages (median): {cached}")
        print(f"{r['entries']:,} {r['backend']}: full run stages (last round): {full}")
    return 0 if all(r["identical results"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
