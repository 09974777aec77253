"""Peak memory of each stage of one `related run`, in-process.

    .venv/bin/python bench/memory_stages.py 100000      # ~5 min on 2 cores
    .venv/bin/python bench/memory_stages.py 100000 --no-token-cache

Copies the bench corpus (bench/gen_corpus.py) to a scratch SQLite file and runs
``related.pipeline.run_job`` once (a first run: empty token cache) with the default settings.
Around every stage the kernel's high-water mark (VmHWM) is read and reset through
/proc/self/clear_refs, so each line is that stage's own peak RSS; the "between" lines are the
work done outside any timed stage. Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import related.pipeline as pipeline
from related.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def status(key: str) -> float:
    """A /proc/self/status memory line, in GB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1e6
    raise KeyError(key)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def main(n: int, *, token_cache: bool) -> None:
    corpus = ROOT / "bench" / ".cache" / f"corpus-{n}-s1.db"
    if not corpus.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_corpus.py"), str(n)], check=True)
    peaks: list[tuple[str, float, float]] = []
    timed_stage = pipeline._Timer.stage

    @contextlib.contextmanager
    def measured_stage(self: pipeline._Timer, name: str) -> Iterator[None]:
        peaks.append((f"(between, before {name})", status("VmHWM"), status("VmRSS")))
        reset_peak()
        with timed_stage(self, name):
            yield
        peaks.append((name, status("VmHWM"), status("VmRSS")))
        reset_peak()

    with tempfile.TemporaryDirectory(prefix="related-memory-") as workdir:
        database = Path(workdir) / "blog.db"
        shutil.copyfile(corpus, database)
        pipeline._Timer.stage = measured_stage  # type: ignore[method-assign]
        try:
            reset_peak()
            settings = Settings(database_url=f"sqlite:///{database}")
            settings = dataclasses.replace(
                settings, run=dataclasses.replace(settings.run, token_cache=token_cache)
            )
            report = pipeline.run_job(settings)
        finally:
            pipeline._Timer.stage = timed_stage  # type: ignore[method-assign]
    cache = "token cache on" if token_cache else "token cache off"
    print(f"{n:,} entries, default settings ({cache}), first run; seconds: {report.seconds}")
    print("| stage | peak RSS GB | RSS at end GB |")
    print("|---|---:|---:|")
    for name, peak, rss in peaks:
        print(f"| {name} | {peak:.2f} | {rss:.2f} |")
    print(f"| whole run | {max(p for _, p, _ in peaks):.2f} | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", type=int, nargs="?", default=10000)
    parser.add_argument("--no-token-cache", dest="token_cache", action="store_false")
    args = parser.parse_args()
    main(args.entries, token_cache=args.token_cache)
