"""Database stages of a full run on each backend: SQLite file, PostgreSQL, MariaDB/MySQL.

    .venv/bin/python bench/db_stages.py --sizes 10000 --runs 1       # a quick check, ~30 s
    .venv/bin/python bench/db_stages.py --sizes 100000 --runs 3 --profile mysql   # ~5 min
    .venv/bin/python bench/db_stages.py --sizes 10000 --runs 1 --profile sqlite postgresql mysql

The first use of a size also makes its corpus (bench/gen_corpus.py) and tokenises it once for
the token cache (~1.5 min at 10k, ~5 min at 100k on 2 cores); later runs reuse both.

Everything goes through related's own library API (``related.db.connect(url)`` -> Store), the
calls `related run` makes, one connection per backend and round:

  read           Store.read_entries of the corpus's entries(id, title, body) table
  cache write    Store.write_token_cache of a complete cache into empty tables: the update a
                 first run writes (every entry and every title, ``rewrite``), made by the real
                 token cache code (pipeline.count_terms -> token_cache.count_entries_cached) on
                 the real corpus, computed once and kept in bench/.cache/
  cache read     Store.read_token_cache of that cache, as the next run reads it
  results write  Store.write_results of N x 10 ResultRows into an empty results table
  10% changed    Store.write_results again, ~10% of the rows changed: 9% new scores (UPDATE),
                 1% another neighbour (DELETE + INSERT), the incremental path of a rerun

Result rows are synthetic and deterministic (10 distinct neighbours per entry, full-precision
scores). The corpus is bench/gen_corpus.py's SQLite file (copied to a scratch file), loaded
once per invocation, untimed, into a new PostgreSQL database (integer, text; COPY; VACUUM
ANALYZE) and a new MariaDB/MySQL database (INT, TEXT title, MEDIUMTEXT body, utf8mb4, InnoDB;
ANALYZE TABLE), both dropped at the end. Servers: RELATED_TEST_POSTGRES_URL and
RELATED_TEST_MYSQL_URL (as for the tests; default: local, postgres / root).

Before each timed write its tables are dropped and made again (Store.prepare and
Store.ensure_results_table, untimed), so every round does the same work. Each round runs
sqlite, postgresql, mysql, then the next round; the table shows medians over ``--runs`` rounds
and each backend's time relative to SQLite's in the same round (the median of the per-round
ratios). Per stage it also records this process's CPU time (the driver's work; for SQLite the
whole engine), the server's CPU time for this connection (/proc counters of its PostgreSQL
backend process or its MariaDB/MySQL server thread, when the server runs on this machine;
background writers excluded) and the whole server's (all its processes / threads: background
work included, and any other session's work on a shared server, which this shows) and this
process's peak RSS (VmHWM, reset before each stage). ``--profile BACKEND...`` adds one untimed
round per backend under cProfile and prints each stage's top functions. Results also go to
bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gc
import io
import os
import pickle
import platform
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pymysql
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import gen_corpus  # noqa: E402

from related import pipeline  # noqa: E402
from related.config import OutputSettings, Settings, SourceSettings  # noqa: E402
from related.db import (  # noqa: E402
    CachedTokens,
    ResultRow,
    ResultsLayout,
    Store,
    TokenCacheUpdate,
    connect,
    token_terms_table,
)
from related.db.urls import mysql_target  # noqa: E402
from related.memory import return_free_memory  # noqa: E402
from related.token_cache import tokenizer_key  # noqa: E402

RESULTS = BENCH / "results"
POSTGRES_ADMIN = os.environ.get(
    "RELATED_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN = os.environ.get("RELATED_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql")
BACKENDS = ("sqlite", "postgresql", "mysql")
STAGES = ("read", "cache write", "cache read", "results write", "10% changed")
SUM_STAGES = STAGES[:4]  # a run: read, cache write and read, one results write
TOP_K = 10
CHANGED, REPLACED = 0.09, 0.01  # shares of the rows rescored / given another neighbour
OUTPUT = OutputSettings()
LAYOUT = ResultsLayout.from_settings(OUTPUT)
CACHE_TABLES = (OUTPUT.token_cache_table, token_terms_table(OUTPUT.token_cache_table))


def with_dbname(url: str, dbname: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{dbname}" + (f"?{query}" if query else "")


def mysql_connect(url: str) -> pymysql.Connection:
    target = mysql_target(url)
    return pymysql.connect(
        database=target.database, charset="utf8mb4", autocommit=True, **target.connect_args
    )


# -- the inputs: corpus, token cache update, result rows -------------------------------------


def corpus_file(n: int, seed: int) -> Path:
    path = gen_corpus.CACHE / f"corpus-{n}-s{seed}.db"
    if not path.exists():
        entries = gen_corpus.generate(n, seed=seed, sentences=gen_corpus.harvest())
        gen_corpus.write_sqlite(path, entries)
    return path


def cache_update(corpus: Path, n: int, seed: int, workers: int) -> TokenCacheUpdate:
    """The token cache a first run writes for this corpus (entries and titles), from the real
    token cache code; tokenising takes minutes at 100k, so it is kept in bench/.cache/, keyed
    by the tokenizer key (settings, related's, MeCab's and unidic's versions)."""
    defaults = Settings()
    settings = dataclasses.replace(defaults, run=dataclasses.replace(defaults.run, workers=workers))
    key = tokenizer_key(settings.tokenizer).hex()[:12]
    path = gen_corpus.CACHE / f"token-update-{n}-s{seed}-{key}.pickle"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)
    print(f"tokenising {n:,} entries once for the token cache update ...", file=sys.stderr)
    started = time.perf_counter()
    with connect(f"sqlite:///{corpus}") as db:
        entries = db.read_entries(settings.source)
    counts = pipeline.count_terms(entries, settings, cached=CachedTokens.empty())
    update = counts.cache_update
    assert update is not None and update.rewrite
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(update, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.rename(path)
    print(f"  done in {time.perf_counter() - started:.0f} s -> {path}", file=sys.stderr)
    return update


def result_rows(ids: list[int], seed: int) -> list[ResultRow]:
    """TOP_K distinct neighbours (never itself) per entry, scores descending by rank."""
    n = len(ids)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(1, n, size=(n, 3 * TOP_K)).tolist()
    scores = np.sort(rng.uniform(0.02, 0.9, size=(n, TOP_K)), axis=1)[:, ::-1].tolist()
    rows = []
    for i in range(n):
        related = list(dict.fromkeys((i + o) % n for o in offsets[i]))[:TOP_K]
        assert len(related) == TOP_K
        rows += [
            ResultRow(ids[i], ids[j], score, rank)
            for rank, (j, score) in enumerate(zip(related, scores[i], strict=True), start=1)
        ]
    return rows


def changed_rows(rows: list[ResultRow], seed: int) -> tuple[list[ResultRow], int, int]:
    """``rows`` with CHANGED of them rescored and REPLACED given a neighbour the entry did not
    have; also returns how many of each."""
    rng = np.random.default_rng(seed + 1)
    draw = rng.random(len(rows)).tolist()
    ids = sorted({row.entry_id for row in rows})
    picks = rng.integers(0, len(ids), size=len(rows)).tolist()
    by_entry: dict[int, set[int]] = {}
    for row in rows:
        by_entry.setdefault(row.entry_id, set()).add(row.related_entry_id)
    out, rescored, replaced = [], 0, 0
    for row, u, pick in zip(rows, draw, picks, strict=True):
        if u < CHANGED:
            row = row._replace(score=row.score * 0.97)
            rescored += 1
        elif u < CHANGED + REPLACED:
            taken = by_entry[row.entry_id]
            while ids[pick] in taken or ids[pick] == row.entry_id:
                pick = (pick + 1) % len(ids)
            taken.add(ids[pick])
            row = row._replace(related_entry_id=ids[pick])
            replaced += 1
        out.append(row)
    return out, rescored, replaced


# -- the databases --------------------------------------------------------------------------


@dataclass
class Target:
    backend: str
    url: str
    drop: Callable[[], None] = lambda: None
    entries_mb: float = 0.0  # the entries table on disk (with its indexes and TOAST)
    server_pid: int | None = None  # the server process, when it runs on this machine
    session_stat: Path | None = None  # /proc stat of this round's connection, server side
    load_seconds: float = 0.0


def sqlite_target(corpus: Path, workdir: Path) -> Target:
    path = workdir / "blog.db"
    started = time.perf_counter()
    shutil.copyfile(corpus, path)
    return Target(
        "sqlite",
        f"sqlite:///{path}",
        entries_mb=path.stat().st_size / 1e6,
        load_seconds=time.perf_counter() - started,
    )


def postgres_target(corpus: Path) -> Target:
    name = f"related_dbstages_{uuid.uuid4().hex[:8]}"
    url = with_dbname(POSTGRES_ADMIN, name)
    started = time.perf_counter()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    try:
        with (
            contextlib.closing(sqlite3.connect(corpus)) as lite,
            psycopg.connect(url, autocommit=True) as conn,
        ):
            conn.execute("CREATE TABLE entries (id integer PRIMARY KEY, title text, body text)")
            with conn.cursor() as cur, cur.copy("COPY entries (id, title, body) FROM STDIN") as cp:
                for row in lite.execute("SELECT id, title, body FROM entries ORDER BY id"):
                    cp.write_row(row)
            conn.execute("VACUUM (ANALYZE) entries")  # hint bits set: reads do not write
            (size,) = conn.execute("SELECT pg_total_relation_size('entries')").fetchone()
            (backend_pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    except BaseException:
        drop()
        raise
    return Target(
        "postgresql",
        url,
        drop,
        entries_mb=size / 1e6,
        server_pid=parent_pid(backend_pid),
        load_seconds=time.perf_counter() - started,
    )


def mysql_target_db(corpus: Path) -> Target:
    name = f"related_dbstages_{uuid.uuid4().hex[:8]}"
    url = with_dbname(MYSQL_ADMIN, name)
    started = time.perf_counter()
    with contextlib.closing(mysql_connect(MYSQL_ADMIN)) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop() -> None:
        with contextlib.closing(mysql_connect(MYSQL_ADMIN)) as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    try:
        with (
            contextlib.closing(sqlite3.connect(corpus)) as lite,
            contextlib.closing(mysql_connect(url)) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute(
                "CREATE TABLE entries (id INT NOT NULL PRIMARY KEY, title TEXT, body MEDIUMTEXT)"
                " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            rows = lite.execute("SELECT id, title, body FROM entries ORDER BY id")
            while block := rows.fetchmany(2000):
                conn.begin()
                cursor.executemany("INSERT INTO entries VALUES (%s, %s, %s)", block)
                conn.commit()
            cursor.execute("ANALYZE TABLE entries")
            cursor.fetchall()
            cursor.execute(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'entries'"
            )
            (size,) = cursor.fetchone()
            cursor.execute("SELECT @@pid_file")
            (pid_file,) = cursor.fetchone()
    except BaseException:
        drop()
        raise
    return Target(
        "mysql",
        url,
        drop,
        entries_mb=int(size) / 1e6,
        server_pid=mysql_pid(pid_file),
        load_seconds=time.perf_counter() - started,
    )


def make_target(backend: str, corpus: Path, workdir: Path) -> Target:
    if backend == "sqlite":
        return sqlite_target(corpus, workdir)
    if backend == "postgresql":
        return postgres_target(corpus)
    return mysql_target_db(corpus)


def drop_tables(db: Store, tables: tuple[str, ...]) -> None:
    for table in tables:
        db.dialect.execute(f"DROP TABLE IF EXISTS {db.dialect.quote(table)}")


# -- measuring ------------------------------------------------------------------------------


def _stat(path: Path) -> list[str] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def parent_pid(pid: int) -> int | None:
    fields = _stat(Path(f"/proc/{pid}/stat"))
    return int(fields[1]) if fields else None


def mysql_pid(pid_file: str | None) -> int | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        return int(Path(pid_file).read_text().split()[0])
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() in ("mariadbd", "mysqld"):
                return int(stat.parent.name)
    return None


_TICK = os.sysconf("SC_CLK_TCK")


def session_stat(db: Store, target: Target) -> Path | None:
    """The /proc stat file of the server process (PostgreSQL) or thread (MariaDB/MySQL)
    serving ``db``'s connection; None for SQLite or a server elsewhere."""
    path = None
    if target.backend == "postgresql":
        ((pid,),) = db.dialect.query("SELECT pg_backend_pid()")
        path = Path(f"/proc/{pid}/stat")
    elif target.backend == "mysql" and target.server_pid is not None:
        with contextlib.suppress(Exception):  # MySQL has no TID column (performance_schema)
            ((tid,),) = db.dialect.query(
                "SELECT tid FROM information_schema.processlist WHERE id = CONNECTION_ID()"
            )
            path = Path(f"/proc/{target.server_pid}/task/{tid}/stat")
    return path if path is not None and _stat(path) is not None else None


def server_cpu(target: Target) -> float | None:
    """CPU seconds the server has spent on this round's connection so far."""
    if target.session_stat is None:
        return None
    fields = _stat(target.session_stat)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None  # utime + stime


def whole_server_cpu(target: Target) -> float | None:
    """CPU seconds all of the server has used so far: PostgreSQL's postmaster (with the
    children it reaped) and its live children, or the whole MariaDB/MySQL process."""
    pid = target.server_pid
    own = _stat(Path(f"/proc/{pid}/stat")) if pid is not None else None
    if own is None:
        return None
    ticks = sum(map(int, own[11:15] if target.backend == "postgresql" else own[11:13]))
    if target.backend == "postgresql":
        for path in Path("/proc").glob("[0-9]*/stat"):
            fields = _stat(path)
            if fields and int(fields[1]) == pid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICK


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def memory_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


@dataclass
class Measured:
    wall: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    whole_server_cpu: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    extra_mb: list[float] = field(default_factory=list)


class Stages:
    """Measurements per (size, backend, stage), one value per round."""

    def __init__(self) -> None:
        self.data: dict[tuple[int, str, str], Measured] = {}
        self.profiles: dict[tuple[str, str], str] = {}
        self.statements: list[tuple[int, str, float]] = []  # profile rounds: see instrument

    @contextlib.contextmanager
    def stage(self, n: int, target: Target, name: str, profile: bool = False) -> Iterator[None]:
        gc.collect()
        return_free_memory()  # freed pages of the previous stage back to the OS, so +MB counts
        reset_peak()
        start_kb = memory_kb("VmRSS")
        server, whole = server_cpu(target), whole_server_cpu(target)
        self.statements.clear()
        profiler = cProfile.Profile() if profile else None
        cpu, wall = cpu_seconds(), time.perf_counter()
        if profiler:
            profiler.enable()
        yield
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        server_after, whole_after = server_cpu(target), whole_server_cpu(target)
        if profiler:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            server_text = (
                f", server CPU {server_after - server:.2f} s"
                if server is not None and server_after is not None
                else ""
            )
            self.profiles[(target.backend, name)] = (
                f"{wall:.2f} s wall under cProfile, client CPU {cpu:.2f} s{server_text}\n"
                f"statements (wall, server time included; nested ones indented):\n"
                + statement_summary(self.statements)
                + "\n"
                + "\n".join(line for line in text.getvalue().splitlines() if line.strip())
            )
            return
        m = self.data.setdefault((n, target.backend, name), Measured())
        m.wall.append(wall)
        m.client_cpu.append(cpu)
        if server is not None and server_after is not None:
            m.server_cpu.append(server_after - server)
        if whole is not None and whole_after is not None:
            m.whole_server_cpu.append(whole_after - whole)
        peak = memory_kb("VmHWM")
        m.peak_mb.append(peak / 1024)
        m.extra_mb.append((peak - start_kb) / 1024)


def instrument(dialect: Any, log: list[tuple[int, str, float]]) -> None:
    """Profile rounds only: time every call the store makes to its dialect (instance
    attributes shadow the methods; related/ is untouched)."""
    depth = [0]

    def label(name: str, args: tuple[Any, ...]) -> str:
        first = args[0] if args else ""
        text = " ".join(str(first).split())
        return f"{name}: {text[:110]}"

    def wrap(name: str) -> None:
        original = getattr(dialect, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                log.append((depth[0], label(name, args), time.perf_counter() - started))

        setattr(dialect, name, timed)

    def wrap_block(name: str, *, exit_only: bool) -> None:
        original = getattr(dialect, name)

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            started = time.perf_counter()
            block = original(*args, **kwargs)
            value = block.__enter__()
            depth[0] += 1
            try:
                yield value
            except BaseException:
                depth[0] -= 1
                if not block.__exit__(*sys.exc_info()):
                    raise
                return
            depth[0] -= 1
            if exit_only:  # a transaction: its COMMIT
                started = time.perf_counter()
                text = f"{name} end (commit)"
            else:  # a streamed SELECT: the store's work on the rows is included
                text = f"{label(name, args)} [rows consumed]"
            block.__exit__(None, None, None)
            log.append((depth[0], text, time.perf_counter() - started))

        setattr(dialect, name, timed)

    for name in ("execute", "query", "bulk_insert", "delete_keys", "analyze"):
        wrap(name)
    wrap_block("stream", exit_only=False)
    wrap_block("transaction", exit_only=True)
    wrap_block("snapshot", exit_only=True)


def statement_summary(log: list[tuple[int, str, float]]) -> str:
    """The logged calls in order, identical ones merged (count, total seconds)."""
    merged: dict[tuple[int, str], list[float]] = {}
    for depth, text, seconds in log:
        merged.setdefault((depth, text), []).append(seconds)
    # Calls are logged as they end, so a nested call is listed before the call around it.
    lines = []
    for (depth, text), times in merged.items():
        count = f" x{len(times)}" if len(times) > 1 else ""
        lines.append(f"  {'    ' * depth}{sum(times):7.3f} s{count}  {text}")
    return "\n".join(lines)


def one_round(
    n: int,
    target: Target,
    update: TokenCacheUpdate,
    rows: tuple[list[ResultRow], list[ResultRow], int, int],
    stages: Stages,
    *,
    profile: bool = False,
) -> None:
    """Every stage once on one backend, through one connection."""
    full, changed, rescored, replaced = rows
    source = SourceSettings()
    with connect(target.url) as db:
        target.session_stat = session_stat(db, target)
        if profile:
            instrument(db.dialect, stages.statements)
        with stages.stage(n, target, "read", profile):
            entries = db.read_entries(source)
        id_type, count = entries.id_type, len(entries)
        del entries
        assert count == n, (target.backend, count)

        drop_tables(db, CACHE_TABLES)
        db.prepare(OUTPUT, token_cache=True, create=True)
        with stages.stage(n, target, "cache write", profile):
            db.write_token_cache(OUTPUT.token_cache_table, update)
        with stages.stage(n, target, "cache read", profile):
            cached = db.read_token_cache(OUTPUT.token_cache_table)
        assert cached is not None
        assert len(cached.rows) == len(update.new_rows), (target.backend, len(cached.rows))
        assert len(cached.terms) == len(update.new_terms), (target.backend, len(cached.terms))
        del cached

        drop_tables(db, (LAYOUT.table,))
        db.ensure_results_table(LAYOUT, id_type)
        with stages.stage(n, target, "results write", profile):
            first = db.write_results(full, layout=LAYOUT, id_type=id_type)
        assert (first.inserted, first.total) == (len(full), len(full)), (target.backend, first)
        with stages.stage(n, target, "10% changed", profile):
            second = db.write_results(changed, layout=LAYOUT, id_type=id_type)
        expected = (replaced, rescored, replaced, len(full))
        got = (second.inserted, second.updated, second.deleted, second.total)
        assert got == expected, (target.backend, got, expected)


# -- report ---------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratios(stages: Stages, n: int, backend: str, names: tuple[str, ...]) -> list[float]:
    """Per round: backend's time over SQLite's for the stages ``names`` summed."""

    def total(b: str) -> list[float]:
        series = [stages.data[(n, b, name)].wall for name in names]
        return [sum(values) for values in zip(*series, strict=True)]

    return [x / s for x, s in zip(total(backend), total("sqlite"), strict=True)]


def summed(stages: Stages, n: int, backend: str, names: tuple[str, ...]) -> float:
    """Median over rounds of the stages ``names`` summed within each round."""
    series = [stages.data[(n, backend, name)].wall for name in names]
    return median([sum(values) for values in zip(*series, strict=True)])


def table(stages: Stages, sizes: list[int], backends: tuple[str, ...]) -> str:
    others = [b for b in backends if b != "sqlite"]
    head = "| entries | stage | sqlite s | " + " | ".join(f"{b} s | x sqlite" for b in others)
    lines = [head + " |", "|---:|---|---:|" + "---:|---:|" * len(others)]
    rows = [(name, (name,)) for name in STAGES]
    rows.append(("**sum** (read + cache write + cache read + results write)", SUM_STAGES))
    rows.append(("sum with the 10% changed write instead", (*STAGES[:3], STAGES[4])))
    for n in sizes:
        for label, names in rows:
            cells = [f"{n:,}", label, f"{summed(stages, n, 'sqlite', names):.2f}"]
            for b in others:
                cells += [
                    f"{summed(stages, n, b, names):.2f}",
                    f"{median(ratios(stages, n, b, names)):.2f}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail(stages: Stages, sizes: list[int], backends: tuple[str, ...]) -> str:
    lines = [
        "| entries | backend | stage | wall s | client CPU s | server CPU s (connection) "
        "| whole server CPU s | peak RSS MB | +MB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for b in backends:
            for name in STAGES:
                m = stages.data[(n, b, name)]
                server = f"{median(m.server_cpu):.2f}" if m.server_cpu else ""
                whole = f"{median(m.whole_server_cpu):.2f}" if m.whole_server_cpu else ""
                lines.append(
                    f"| {n:,} | {b} | {name} | {median(m.wall):.2f} | {median(m.client_cpu):.2f} "
                    f"| {server} | {whole} | {median(m.peak_mb):.0f} | {median(m.extra_mb):.0f} |"
                )
    return "\n".join(lines)


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip()


def environment() -> str:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gb = memory_total_gb()
    with psycopg.connect(POSTGRES_ADMIN) as conn:
        (pg_version,) = conn.execute("SHOW server_version").fetchone()
        pg_settings = conn.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_wal_size') "
            "ORDER BY name"
        ).fetchall()
    with contextlib.closing(mysql_connect(MYSQL_ADMIN)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        (my_version,) = cursor.fetchone()
        cursor.execute(
            "SELECT @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit, "
            "@@max_allowed_packet, @@log_bin"
        )
        pool, flush, packet, log_bin = cursor.fetchone()
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "related")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    pg = ", ".join(f"{k} {v}" for k, v in pg_settings)
    commit = git("rev-parse", "--short", "HEAD") + (" (related/ modified)" if dirty else "")
    return (
        f"- {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; commit {commit}"
        + f"; load average at start {load}\n"
        f"- CPU: {cpu_model}, {os.cpu_count()} cores, {memory_gb:.0f} GB; "
        f"{platform.platform(terse=True)}\n"
        f"- Python {platform.python_version()}, psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__}, libpq {psycopg.pq.version()}), "
        f"PyMySQL {metadata.version('PyMySQL')} "
        f"(pure Python), sqlite3 {sqlite3.sqlite_version}, numpy {np.__version__}\n"
        f"- PostgreSQL {pg_version} ({pg}); MariaDB/MySQL {my_version} "
        f"(innodb_buffer_pool_size {int(pool) >> 20} MB, innodb_flush_log_at_trx_commit "
        f"{flush}, max_allowed_packet {int(packet) >> 20} MB, log_bin {log_bin})"
    )


def memory_total_gb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1e6
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100000])
    parser.add_argument("--runs", type=int, default=3, help="rounds (all backends each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="for tokenising the cache once")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--profile",
        nargs="+",
        choices=BACKENDS,
        default=[],
        help="after the timed rounds, one untimed round of these backends under cProfile",
    )
    args = parser.parse_args(argv)
    backends = tuple(b for b in BACKENDS if b in {"sqlite", *args.backends})
    header = environment()
    print(header, flush=True)
    stages = Stages()
    notes = []
    started = time.perf_counter()
    for n in args.sizes:
        corpus = corpus_file(n, args.seed)
        update = cache_update(corpus, n, args.seed, args.workers)
        with connect(f"sqlite:///{corpus}") as db:
            entries = db.read_entries(SourceSettings())
        ids = entries.ids
        text_mb = sum(len(e.title.encode()) + len(e.body.encode()) for e in entries.items) / 1e6
        del entries
        full = result_rows(ids, args.seed)
        changed, rescored, replaced = changed_rows(full, args.seed)
        rows = (full, changed, rescored, replaced)
        blob_mb = sum(len(k) + len(i) + len(c) for k, i, c in update.new_rows) / 1e6
        gc.collect()
        with tempfile.TemporaryDirectory(prefix="related-dbstages-") as tmp:
            targets: list[Target] = []
            try:
                for backend in backends:
                    targets.append(make_target(backend, corpus, Path(tmp)))
                    print(
                        f"{n:,}: {backend} loaded in {targets[-1].load_seconds:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                sizes = ", ".join(f"{t.backend} {t.entries_mb:.0f} MB" for t in targets)
                notes.append(
                    f"- {n:,} entries: {text_mb:.0f} MB of UTF-8 text (titles + bodies); entries "
                    f"table on disk: {sizes}; token cache: {len(update.new_rows):,} rows "
                    f"(entries + titles), {blob_mb:.0f} MB of blobs, {len(update.new_terms):,} "
                    f"terms; results: {len(full):,} rows, then {rescored:,} rescored + "
                    f"{replaced:,} replaced"
                )
                for r in range(args.runs):
                    for target in targets:
                        round_started = time.perf_counter()
                        one_round(n, target, update, rows, stages)
                        print(
                            f"{n:,} round {r + 1}/{args.runs} {target.backend}: "
                            f"{time.perf_counter() - round_started:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
                for target in targets:
                    if target.backend in args.profile:
                        one_round(n, target, update, rows, stages, profile=True)
            finally:
                for target in targets:
                    target.drop()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = "python bench/db_stages.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = (
        f"{header}\n- command: {command}; {time.perf_counter() - started:.0f} s in all; "
        f"load average at the end {load}\n"
        + "\n".join(notes)
        + f"\n\nMedians of {args.runs} round(s); x sqlite = the backend's time / SQLite's in the "
        "same round (median over rounds).\n\n"
        + table(stages, args.sizes, backends)
        + "\n\nPer stage (medians): client = this process (driver; for SQLite the whole "
        "engine), server = the server process (PostgreSQL) or thread (MariaDB) serving the "
        "connection, whole server = all of the server's processes or threads (other sessions' "
        "work on a shared server included); peak RSS = this process's VmHWM during the stage, "
        "+MB over its RSS at the start.\n\n" + detail(stages, args.sizes, backends) + "\n"
    )
    for (backend, name), text in stages.profiles.items():
        report += f"\n### cProfile: {backend}, {name}\n\n```\n{text.strip()}\n```\n"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("db-stages-%Y%m%d-%H%M%S.md")
    out.write_text(report, encoding="utf-8")
    print(f"\n{report}\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
